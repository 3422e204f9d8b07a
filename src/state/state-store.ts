import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { readIfExists, writeFileAtomic } from './atomic-file.js';
import type { DedupEntry, DedupTable } from './dedup.js';
import { decodeSpool, encodeSpool, type SpooledBatch } from './spool.js';
import type { Watermark } from './watermark.js';

/** What the service remembers between cycles and across restarts. */
export interface ServiceState {
  /** Per datasource with `incremental`. */
  readonly watermarks: Map<string, Watermark>;
  /** Per rule: remembered alert keys. */
  readonly dedup: Map<string, DedupTable>;
  /** Per target: batches waiting to be sent again, oldest first. */
  readonly spool: Map<string, SpooledBatch[]>;
}

export function emptyState(): ServiceState {
  return { watermarks: new Map(), dedup: new Map(), spool: new Map() };
}

/** A copy a cycle can change freely; it replaces the remembered state only when committed. */
export function copyState(state: ServiceState): ServiceState {
  return {
    watermarks: new Map(state.watermarks),
    dedup: new Map([...state.dedup].map(([rule, table]) => [rule, new Map(table)])),
    spool: new Map([...state.spool].map(([target, batches]) => [target, [...batches]])),
  };
}

const FORMAT = 1;

/** Another running process holds the state folder. */
export class StateInUseError extends Error {
  override readonly name = 'StateInUseError';
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The state folder (settings.state_dir): one file per concern, each replaced atomically.
 *   watermarks.json   {"format":1,"datasources":{"<name>":{"field","value","atValue":[...]}}}
 *   dedup.json        {"format":1,"rules":{"<rule>":{"<key>":[seen_ms, exported_ms]}}}
 *   spool/<target>.ndjson   one undelivered batch per line, oldest first
 */
export class StateStore {
  constructor(readonly dir: string) {}

  get spoolDir(): string {
    return path.join(this.dir, 'spool');
  }

  get lockFile(): string {
    return path.join(this.dir, 'lock');
  }

  /**
   * Creates the folder if needed and takes it for this process: two processes sharing one state
   * folder would overwrite each other's memory. A lock left by a process that no longer runs
   * (kill -9, a crash) is taken over.
   */
  async open(): Promise<void> {
    await mkdir(this.spoolDir, { recursive: true });
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(this.lockFile, 'wx', 0o600);
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      }
      const holder = Number((await readFile(this.lockFile, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isRunning(holder)) {
        throw new StateInUseError(
          `state folder ${this.dir} is in use by process ${holder}; two processes must not share one state_dir (stop the other, or give this config its own settings.state_dir)`,
        );
      }
      await rm(this.lockFile, { force: true });
    }
  }

  /** Gives the folder back. */
  async close(): Promise<void> {
    const holder = Number((await readFile(this.lockFile, 'utf8').catch(() => '')).trim());
    if (holder === process.pid) await rm(this.lockFile, { force: true });
  }

  async load(): Promise<ServiceState> {
    const state = emptyState();
    const watermarks = await this.readJson('watermarks.json');
    for (const [name, mark] of Object.entries((watermarks?.datasources ?? {}) as Record<string, Watermark>)) state.watermarks.set(name, mark);
    const dedup = await this.readJson('dedup.json');
    for (const [rule, keys] of Object.entries((dedup?.rules ?? {}) as Record<string, Record<string, [number, number]>>)) {
      const table: DedupTable = new Map();
      // Oldest seen first, as the in-memory order is.
      for (const [key, [seen, exported]] of Object.entries(keys).sort((a, b) => a[1][0] - b[1][0])) table.set(key, { seen, exported });
      state.dedup.set(rule, table);
    }
    for (const entry of await readdir(this.spoolDir).catch(() => [] as string[])) {
      if (!entry.endsWith('.ndjson')) continue;
      const file = path.join(this.spoolDir, entry);
      const batches = decodeSpool((await readIfExists(file)) ?? '', file);
      if (batches.length > 0) state.spool.set(decodeURIComponent(entry.slice(0, -'.ndjson'.length)), batches);
    }
    return state;
  }

  /**
   * Makes `next` the remembered state. The spool goes first: a crash between the two steps then
   * leaves a batch both spooled and due to be read again (sent twice), never in neither place.
   */
  async commit(next: ServiceState, previous: ServiceState): Promise<void> {
    for (const target of new Set([...next.spool.keys(), ...previous.spool.keys()])) {
      const batches = next.spool.get(target) ?? [];
      if (batches === previous.spool.get(target)) continue;
      const file = this.spoolFile(target);
      if (batches.length === 0) await rm(file, { force: true });
      else await writeFileAtomic(file, encodeSpool(batches));
    }
    await writeFileAtomic(path.join(this.dir, 'watermarks.json'), JSON.stringify({ format: FORMAT, datasources: Object.fromEntries(next.watermarks) }) + '\n');
    const rules: Record<string, Record<string, [number, number]>> = {};
    for (const [rule, table] of next.dedup) {
      rules[rule] = Object.fromEntries([...table].map(([key, e]: [string, DedupEntry]) => [key, [e.seen, e.exported]]));
    }
    await writeFileAtomic(path.join(this.dir, 'dedup.json'), JSON.stringify({ format: FORMAT, rules }) + '\n');
  }

  spoolFile(target: string): string {
    return path.join(this.spoolDir, `${encodeURIComponent(target)}.ndjson`);
  }

  private async readJson(name: string): Promise<Record<string, unknown> | undefined> {
    const file = path.join(this.dir, name);
    const text = await readIfExists(file);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message}); restore it or remove it (its memory is then lost) to go on`);
    }
  }
}
