/**
 * The process's one undici Agent: it keeps a keep-alive connection pool per origin, so every
 * connector calling the same origin (a REST source and target on one API, several CSV URLs on
 * one host) shares its connections. Each HttpClient holds a reference; the last one to close
 * (connectors close with the runtime) closes the Agent. undici is imported here, on first use.
 */
import type { Agent } from 'undici';

let shared: { agent: Agent; users: number } | undefined;

export async function acquireAgent(): Promise<Agent> {
  const { Agent } = await import('undici');
  // Checked after the import: two clients starting at once must end up on the same Agent.
  shared ??= { agent: new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000 }), users: 0 };
  shared.users++;
  return shared.agent;
}

export async function releaseAgent(agent: Agent): Promise<void> {
  if (shared?.agent !== agent) return;
  shared.users--;
  if (shared.users > 0) return;
  shared = undefined;
  await agent.close();
}

/** How many clients hold the shared Agent (for tests). */
export function agentUsers(): number {
  return shared?.users ?? 0;
}
