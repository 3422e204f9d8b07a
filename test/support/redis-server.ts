/**
 * What the Redis tests share: the machine's Redis (TEST_REDIS_URL, default
 * redis://127.0.0.1:6379/0), a key prefix per test removed afterwards, and a second redis-server
 * of the test's own on an ephemeral port, which a test may stop and start again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** A client on the test Redis, for asserting what landed. */
export function testClient(url = TEST_REDIS_URL): Redis {
  return new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1, protocol: 2 });
}

/** A fresh key prefix: tests never see each other's keys. */
export function uniquePrefix(name = 'test'): string {
  return `tp-test:${name}:${randomBytes(4).toString('hex')}:`;
}

/** Every key under the prefix, sorted. */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return [...new Set(keys)].sort();
}

export async function removeKeysUnder(client: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(client, prefix);
  for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500));
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  /** Stops it with SIGKILL: what it acknowledged is on disk (appendfsync always), the rest is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data folder. */
  start(): Promise<void>;
  /** Stops it for good and removes its folder. */
  remove(): Promise<void>;
}

/**
 * A redis-server of the test's own on a free port, persisting every write before it replies
 * (appendonly, appendfsync always), so a restart keeps exactly what it acknowledged.
 */
export async function startOwnRedis(extraArgs: string[] = []): Promise<OwnRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--logfile', path.join(dir, 'log'), ...extraArgs],
      { stdio: 'ignore' },
    );
    await waitForPing(port, child);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    kill,
    start,
    async remove() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A redis-server started with a config file (a Sentinel needs one it can write), on a free port. */
export async function startRedisWithConfig(config: string, extraArgs: string[] = []): Promise<{ port: number; remove(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-redis-'));
  const port = await freePort();
  const file = path.join(dir, 'redis.conf');
  writeFileSync(file, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nlogfile ${path.join(dir, 'log')}\n${config}\n`);
  const child = spawn('redis-server', [file, ...extraArgs], { stdio: 'ignore' });
  await waitForPing(port, child);
  return {
    port,
    async remove() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, protocol: 2, enableReadyCheck: false });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return;
    } catch (err) {
      // A server that asks for a password is up.
      if (/NOAUTH/.test((err as Error).message)) {
        client.disconnect();
        return;
      }
      client.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`redis-server on port ${port} did not answer within 10 s`);
}
