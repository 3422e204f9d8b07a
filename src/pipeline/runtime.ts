import { isDeepStrictEqual } from 'node:util';
import { sinkSpec, sourceSpec } from '../../connectors/index.js';
import type { CreateContext, Sink, Source } from '../../connectors/types.js';
import type { ConnectorConfig, LoadedConfig } from '../config/types.js';
import { deliveryPolicyOf, type DeliveryConfig, type DeliveryPolicy } from '../delivery/policy.js';
import { withDeadline } from '../delivery/retry.js';
import { describeError, serializeError } from '../errors.js';
import type { Logger } from '../log.js';
import { DryRunSink } from './dry-run-sink.js';

/**
 * A connector that could not be created keeps its error, reported as that endpoint's failure,
 * and is created again on a later cycle once its backoff has passed: a server that was down at
 * start-up does not stay failed for the life of the process.
 */
export type Endpoint<T> =
  | { ok: true; value: T; type: string }
  | { ok: false; error: unknown; type: string; attempts: number; retryAt: number; create: () => Promise<T> };

/** The connectors of one loaded config, created once and reused by every cycle. */
export interface Runtime {
  readonly config: LoadedConfig;
  readonly log: Logger;
  readonly sources: Map<string, Endpoint<Source>>;
  readonly sinks: Map<string, Endpoint<Sink>>;
  readonly dryRun: boolean;
}

export interface RuntimeOptions {
  readonly dryRun?: boolean;
  /** Every datasource and target in the config, not only those enabled rules use (for --check). */
  readonly all?: boolean;
  /** Aborting stops creations in progress. */
  readonly signal?: AbortSignal;
  /** A reload: connectors of this runtime whose config did not change are taken over, connections and all, not created again. */
  readonly reuse?: Runtime;
  /** Targets with batches in the dead-letter spool: created even when no enabled rule uses them any more, so the spool still goes out. */
  readonly spooledTargets?: readonly string[];
}

/** How long creating one connector may take; creation that needs the network must connect lazily or within this. */
export const CREATE_TIMEOUT_MS = 30_000;
/** Waits between attempts to create a connector that failed: 0 (the next cycle), then 15 s doubling to 5 minutes. */
const RECREATE_BACKOFF_MS = [0, 15_000, 30_000, 60_000, 120_000, 300_000];

/** Creates the datasources and targets that enabled rules use; the others are left alone and said so. */
export async function openRuntime(config: LoadedConfig, log: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  const rules = config.rules.filter((r) => r.enabled);
  const usedSources = options.all ? new Set(Object.keys(config.datasources)) : new Set(rules.flatMap((r) => r.datasources));
  const usedTargets = options.all ? new Set(Object.keys(config.targets)) : new Set(rules.flatMap((r) => r.targets));
  for (const name of options.spooledTargets ?? []) if (Object.hasOwn(config.targets, name)) usedTargets.add(name);
  if (!options.all) {
    for (const name of Object.keys(config.datasources)) {
      if (!usedSources.has(name)) log.warn({ datasource: name }, 'datasource is not read: no enabled rule uses it');
    }
  }
  const signal = options.signal ?? new AbortController().signal;
  const sources = new Map<string, Endpoint<Source>>();
  const sinks = new Map<string, Endpoint<Sink>>();
  await Promise.all([
    ...[...usedSources].map(async (name) => {
      const cfg = config.datasources[name]!;
      const kept = reusable(options.reuse, 'sources', name, cfg);
      if (kept) return void sources.set(name, kept);
      const ctx = createContext(config, name, log.child({ datasource: name }), signal);
      sources.set(name, await attempt(cfg.type, () => sourceSpec(cfg.type)!.create(cfg, ctx), `creating datasource "${name}"`, signal));
    }),
    ...[...usedTargets].map(async (name) => {
      const cfg = config.targets[name]!;
      const kept = reusable(options.reuse, 'sinks', name, cfg);
      if (kept) return void sinks.set(name, kept);
      const ctx = createContext(config, name, log.child({ target: name }), signal);
      const create = options.dryRun
        ? async (): Promise<Sink> => new DryRunSink(name, cfg.type, cfg.include_metadata !== false)
        : () => sinkSpec(cfg.type)!.create(cfg, ctx);
      sinks.set(name, await attempt(cfg.type, create, `creating export target "${name}"`, signal));
    }),
  ]);
  return { config, log, sources, sinks, dryRun: options.dryRun === true };
}

/** The previous runtime's connector of that name, when it was created from an identical config (and the same dry-run choice). */
function reusable<K extends 'sources' | 'sinks'>(previous: Runtime | undefined, kind: K, name: string, cfg: ConnectorConfig): Runtime[K] extends Map<string, infer E> ? E | undefined : never {
  if (!previous) return undefined as never;
  const before = kind === 'sources' ? previous.config.datasources[name] : previous.config.targets[name];
  const endpoint = previous[kind].get(name);
  return (endpoint?.ok && isDeepStrictEqual(before, cfg) ? endpoint : undefined) as never;
}

/** After a reload: closes the old runtime's connectors that the new one did not take over. */
export async function closeReplaced(previous: Runtime, next: Runtime): Promise<void> {
  const kept = new Set<unknown>([...next.sources.values(), ...next.sinks.values()].map((e) => (e.ok ? e.value : undefined)));
  const closing = [...previous.sources.values(), ...previous.sinks.values()].map((e) => (e.ok && !kept.has(e.value) ? e.value.close?.() : undefined));
  await Promise.allSettled(closing);
}

function createContext(config: LoadedConfig, name: string, log: Logger, signal: AbortSignal): CreateContext {
  return { name, configDir: config.dir, log, signal };
}

async function attempt<T>(type: string, create: () => Promise<T>, what: string, signal: AbortSignal, attempts = 0): Promise<Endpoint<T>> {
  try {
    return { ok: true, value: await withDeadline(create(), CREATE_TIMEOUT_MS, signal, what), type };
  } catch (error) {
    const wait = RECREATE_BACKOFF_MS[Math.min(attempts, RECREATE_BACKOFF_MS.length - 1)]!;
    return { ok: false, error, type, attempts: attempts + 1, retryAt: Date.now() + wait, create };
  }
}

/**
 * At the start of a cycle: creates again every connector that failed before and whose backoff
 * has passed. One that succeeds takes part in this cycle; one that fails waits longer.
 */
export async function recreateFailedEndpoints(runtime: Runtime, signal: AbortSignal, log: Logger = runtime.log): Promise<void> {
  const now = Date.now();
  const retry = async <T>(map: Map<string, Endpoint<T>>, kind: string, name: string, endpoint: Endpoint<T>) => {
    if (endpoint.ok || endpoint.retryAt > now) return;
    const next = await attempt(endpoint.type, endpoint.create, `creating ${kind} "${name}"`, signal, endpoint.attempts);
    map.set(name, next);
    if (next.ok) log.info({ [kind === 'datasource' ? 'datasource' : 'target']: name, attempts: endpoint.attempts + 1 }, `${kind} created after an earlier failure`);
    else log.debug({ err: serializeError(next.error), next_attempt_at: new Date(next.retryAt).toISOString() }, `${kind} "${name}" still cannot be created`);
  };
  await Promise.all([
    ...[...runtime.sources].map(([name, e]) => retry(runtime.sources, 'datasource', name, e)),
    ...[...runtime.sinks].map(([name, e]) => retry(runtime.sinks, 'export target', name, e)),
  ]);
}

/** The delivery policy (batching and retry keys) of a target: its config over its spec's defaults. */
export function deliveryPolicyFor(config: ConnectorConfig): DeliveryPolicy {
  const spec = sinkSpec(config.type);
  const defaults = spec?.batching ?? { batch_size: 500, batch_bytes: 4 * 1024 * 1024, linger: '0s', max_in_flight: 1 };
  return deliveryPolicyOf(config as DeliveryConfig, defaults);
}

export function endpointError(endpoint: Endpoint<unknown>): string | undefined {
  return endpoint.ok ? undefined : describeError(endpoint.error);
}

export async function closeRuntime(runtime: Runtime): Promise<void> {
  const closing = [
    ...[...runtime.sources.values()].map((e) => (e.ok ? e.value.close?.() : undefined)),
    ...[...runtime.sinks.values()].map((e) => (e.ok ? e.value.close?.() : undefined)),
  ];
  await Promise.allSettled(closing);
}
