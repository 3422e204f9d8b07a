import { sinkSpec, sourceSpec } from '../../connectors/index.js';
import type { Sink, Source } from '../../connectors/types.js';
import type { LoadedConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { DryRunSink } from './dry-run-sink.js';

/** A connector that could not be created keeps its error, reported as that endpoint's failure each cycle. */
export type Endpoint<T> = { ok: true; value: T; type: string } | { ok: false; error: Error; type: string };

/** The connectors of one loaded config, created once and reused by every cycle. */
export interface Runtime {
  readonly config: LoadedConfig;
  readonly log: Logger;
  readonly sources: ReadonlyMap<string, Endpoint<Source>>;
  readonly sinks: ReadonlyMap<string, Endpoint<Sink>>;
  readonly dryRun: boolean;
}

export interface RuntimeOptions {
  readonly dryRun?: boolean;
}

/** Creates the datasources and targets that enabled rules use; the others are left alone and said so. */
export async function openRuntime(config: LoadedConfig, log: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  const rules = config.rules.filter((r) => r.enabled);
  const usedSources = new Set(rules.flatMap((r) => r.datasources));
  const usedTargets = new Set(rules.flatMap((r) => r.targets));
  for (const name of Object.keys(config.datasources)) {
    if (!usedSources.has(name)) log.warn({ datasource: name }, 'datasource is not read: no enabled rule uses it');
  }
  const sources = new Map<string, Endpoint<Source>>();
  const sinks = new Map<string, Endpoint<Sink>>();
  await Promise.all([
    ...[...usedSources].map(async (name) => {
      const cfg = config.datasources[name]!;
      const ctx = { name, configDir: config.dir, log: log.child({ datasource: name }) };
      sources.set(name, await attempt(cfg.type, () => sourceSpec(cfg.type)!.create(cfg, ctx)));
    }),
    ...[...usedTargets].map(async (name) => {
      const cfg = config.targets[name]!;
      const ctx = { name, configDir: config.dir, log: log.child({ target: name }) };
      const create = options.dryRun
        ? async (): Promise<Sink> => new DryRunSink(name, cfg.type, cfg.include_metadata !== false)
        : () => sinkSpec(cfg.type)!.create(cfg, ctx);
      sinks.set(name, await attempt(cfg.type, create));
    }),
  ]);
  return { config, log, sources, sinks, dryRun: options.dryRun === true };
}

async function attempt<T>(type: string, create: () => Promise<T>): Promise<Endpoint<T>> {
  try {
    return { ok: true, value: await create(), type };
  } catch (err) {
    return { ok: false, error: err as Error, type };
  }
}

export async function closeRuntime(runtime: Runtime): Promise<void> {
  const closing = [
    ...[...runtime.sources.values()].map((e) => (e.ok ? e.value.close?.() : undefined)),
    ...[...runtime.sinks.values()].map((e) => (e.ok ? e.value.close?.() : undefined)),
  ];
  await Promise.allSettled(closing);
}
