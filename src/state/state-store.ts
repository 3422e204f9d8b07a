import { link, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
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
 * When a process started, in clock ticks since boot (/proc/PID/stat, field 22): with the pid, it
 * names one process, where a pid alone is reused (after a reboot, the old service's pid often
 * belongs to something else). Undefined where /proc is not there: the pid alone is then used.
 */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** What a lock file says: `PID START` (START may be absent, as older versions wrote it). */
interface LockHolder {
  readonly pid: number;
  readonly start: string | undefined;
}

function parseLock(text: string): LockHolder | undefined {
  const [pid, start] = text.trim().split(/\s+/);
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 ? { pid: n, start } : undefined;
}

/** The holder still runs: its pid is alive and, where both are known, started when the lock says. */
async function holderRuns(holder: LockHolder): Promise<boolean> {
  if (!isRunning(holder.pid)) return false;
  if (holder.start === undefined) return true;
  const start = await startTimeOf(holder.pid);
  return start === undefined || start === holder.start;
}

/** How often, and how long in all, a start waits for another process taking over the same stale lock. */
const TAKEOVER_WAIT_MS = 50;
const TAKEOVER_ATTEMPTS = 100;

/**
 * Creates the file with this content unless it exists; false when it does. The content is
 * written to a file of this process first and linked into place, so the file never exists empty:
 * another process reading it mid-creation would take an empty lock for a stale one.
 */
async function createExclusive(file: string, content: string): Promise<boolean> {
  const draft = `${file}.${process.pid}.draft`;
  await writeFile(draft, content, { mode: 0o600 });
  try {
    await link(draft, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(draft, { force: true });
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
    const mine = `${process.pid} ${(await startTimeOf(process.pid)) ?? ''}`.trim() + '\n';
    for (let attempt = 0; ; attempt++) {
      if (await createExclusive(this.lockFile, mine)) return;
      const holder = parseLock(await readFile(this.lockFile, 'utf8').catch(() => ''));
      if (holder && holder.pid !== process.pid && (await holderRuns(holder))) {
        throw new StateInUseError(
          `state folder ${this.dir} is in use by process ${holder.pid}; two processes must not share one state_dir (stop the other, or give this config its own settings.state_dir)`,
        );
      }
      if (attempt >= TAKEOVER_ATTEMPTS) throw new StateInUseError(`state folder ${this.dir}: its lock could not be taken over (another process kept taking it over); try again`);
      await this.takeOverStaleLock(holder);
    }
  }

  /**
   * Removes a lock left by a process that no longer runs. Two processes starting together may
   * both find it stale: only the one that creates `lock.takeover` removes it, so neither removes
   * the lock the other has just taken. The other waits and looks again.
   */
  private async takeOverStaleLock(stale: LockHolder | undefined): Promise<void> {
    const takeover = `${this.lockFile}.takeover`;
    if (!(await createExclusive(takeover, `${process.pid}\n`))) {
      const other = parseLock(await readFile(takeover, 'utf8').catch(() => ''));
      // A takeover left by a process that died in it would block every start: it is stale too.
      if (other && !isRunning(other.pid)) await rm(takeover, { force: true });
      await new Promise((resolve) => setTimeout(resolve, TAKEOVER_WAIT_MS));
      return;
    }
    try {
      const now = parseLock(await readFile(this.lockFile, 'utf8').catch(() => ''));
      // Still the stale holder (or no lock at all): nobody took it since it was read.
      if (now?.pid === stale?.pid && now?.start === stale?.start) await rm(this.lockFile, { force: true });
    } finally {
      await rm(takeover, { force: true });
    }
  }

  /** Gives the folder back. */
  async close(): Promise<void> {
    const holder = parseLock(await readFile(this.lockFile, 'utf8').catch(() => ''))?.pid;
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
