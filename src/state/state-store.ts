import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { readIfExists, writeFileAtomic } from './atomic-file.js';
import type { DedupTable } from './dedup.js';
import type { SpooledBatch } from './spool.js';
import { changedDocuments, DEDUP, SPOOL_PREFIX, stateFromDocuments, WATERMARKS } from './state-documents.js';
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

/**
 * Where the state is kept. `open` takes it for this process (two processes sharing one state would
 * overwrite each other's memory) and fails with StateInUseError naming the holder; `commit` makes
 * `next` the remembered state, or throws and leaves the remembered state as it was.
 */
export interface StateBackend {
  /** Where the state is, for messages: never a password. */
  readonly label: string;
  /** Readies the backend; `readOnly` (a dry run) only reads, takes no lock and creates nothing. */
  open(options?: { readOnly?: boolean }): Promise<void>;
  load(): Promise<ServiceState>;
  commit(next: ServiceState, previous: ServiceState): Promise<void>;
  /** Gives the state back: another process may take it. */
  close(): Promise<void>;
  /** Where a target's spooled batches are, for messages. */
  spoolLocation(target: string): string;
}

/** Another running process holds the state. */
export class StateInUseError extends Error {
  override readonly name = 'StateInUseError';
}

/** This process no longer holds the state (its session or lock was lost): it must not write. */
export class StateLockLostError extends Error {
  override readonly name = 'StateLockLostError';
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
export class StateStore implements StateBackend {
  constructor(readonly dir: string) {}

  get label(): string {
    return `state folder ${this.dir}`;
  }

  spoolLocation(target: string): string {
    return this.spoolFile(target);
  }

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
  async open(options: { readOnly?: boolean } = {}): Promise<void> {
    if (options.readOnly) return;
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
    // A folder gone read-only (or away) keeps the lock file: the next start finds its process
    // gone and takes it over. That is no reason to end a clean stop with an error.
    if (holder === process.pid) await rm(this.lockFile, { force: true }).catch(() => {});
  }

  async load(): Promise<ServiceState> {
    const docs: [string, string][] = [];
    for (const name of [WATERMARKS, DEDUP]) {
      const text = await readIfExists(path.join(this.dir, `${name}.json`));
      if (text !== undefined) docs.push([name, text]);
    }
    for (const entry of await readdir(this.spoolDir).catch(() => [] as string[])) {
      if (!entry.endsWith('.ndjson')) continue;
      const text = await readIfExists(path.join(this.spoolDir, entry));
      docs.push([SPOOL_PREFIX + decodeURIComponent(entry.slice(0, -'.ndjson'.length)), text ?? '']);
    }
    return stateFromDocuments(docs, (name) => this.fileOf(name));
  }

  /**
   * Makes `next` the remembered state, one file at a time. The spool goes first: a crash between
   * the steps then leaves a batch both spooled and due to be read again (sent twice), never in
   * neither place.
   */
  async commit(next: ServiceState, previous: ServiceState): Promise<void> {
    for (const [name, text] of changedDocuments(next, previous)) {
      if (text === undefined) await rm(this.fileOf(name), { force: true });
      else await writeFileAtomic(this.fileOf(name), text);
    }
  }

  private fileOf(name: string): string {
    if (name.startsWith(SPOOL_PREFIX)) return this.spoolFile(name.slice(SPOOL_PREFIX.length));
    return path.join(this.dir, `${name}.json`);
  }

  spoolFile(target: string): string {
    return path.join(this.spoolDir, `${encodeURIComponent(target)}.ndjson`);
  }
}
