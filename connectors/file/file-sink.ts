import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, constants, mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { CreateContext, MatchBatch, OperationContext, Sink, SinkSpec } from '../types.js';
import { CsvEncoder } from '../../src/encoding/csv.js';
import { JsonArrayEncoder } from '../../src/encoding/json.js';
import { toNdjsonPieces } from '../../src/encoding/ndjson.js';
import { CancelledError, ConnectorError, wrapError } from '../../src/errors.js';
import { templateFor, templateIssues, type CompileOptions } from '../../src/template/template.js';

type FileFormat = 'ndjson' | 'csv' | 'json';

export interface FileSinkConfig {
  type: 'file';
  path: string;
  format?: FileFormat;
  mode?: 'append' | 'overwrite';
  include_metadata?: boolean;
}

export const fileSink: SinkSpec<FileSinkConfig> = {
  kind: 'target',
  type: 'file',
  summary: 'Writes matches to local files (NDJSON, CSV or a JSON array), made visible atomically at the end of each run.',
  // Files stream their records as they come: gathering them first would only hold memory.
  batching: { batch_size: 10_000, batch_bytes: 8 * 1024 * 1024, linger: '0s', max_in_flight: 4 },
  configSchema: {
    type: 'object',
    required: ['path'],
    properties: {
      path: {
        type: 'string',
        minLength: 1,
        description:
          'File path template, relative to the config file: {rule}, {datasource}, {date} (UTC, YYYY-MM-DD) and {run_id} are filled in. ' +
          'Folders are created as needed.',
        examples: ['out/{rule}-{date}.ndjson', 'out/{run_id}/{datasource}.csv'],
      },
      format: {
        type: 'string',
        enum: ['ndjson', 'csv', 'json'],
        description: 'File format; by default taken from the extension (.csv, .json), otherwise ndjson.',
      },
      mode: {
        type: 'string',
        enum: ['append', 'overwrite'],
        default: 'append',
        description:
          'append: a run adds its records after what the file already holds; overwrite: a run replaces the file. ' +
          'Either way the file is written to a temporary file and renamed into place, so readers never see half a file.',
      },
    },
  },
  validate(config) {
    return templateIssues(config.path, PATH_TEMPLATE, 'path');
  },
  async create(config, ctx) {
    return new FileSink(config, ctx);
  },
};

/** A file holds a batch, so its path is rendered per batch: run-level names only, each value made one safe path segment. */
const PATH_TEMPLATE: CompileOptions = { context: 'path', names: ['rule', 'datasource', 'date', 'run_id'], fields: false, what: 'the path' };

function formatOf(config: FileSinkConfig): FileFormat {
  if (config.format) return config.format;
  const ext = path.extname(config.path).toLowerCase();
  return ext === '.csv' ? 'csv' : ext === '.json' ? 'json' : 'ndjson';
}

/**
 * Writes stop and wait once this much is queued, so a slow disk slows the reading down instead
 * of filling memory. Output goes out in 64 KiB pieces; waiting after each piece left the
 * processor idle while the disk caught up, so a few pieces may queue.
 */
const HIGH_WATER_MARK = 1024 * 1024;

/** One output file being written during a cycle: a temp file renamed over the final path at flush. */
class PendingFile {
  readonly temp: string;
  #out: WriteStream | undefined;
  readonly #csv: CsvEncoder | undefined;
  readonly #json: JsonArrayEncoder | undefined;
  #records = 0;
  #chain: Promise<void> = Promise.resolve();
  /** The first write error: every later write and the commit fail with it instead of waiting on a dead stream. */
  #failure: Error | undefined;

  constructor(
    readonly final: string,
    private readonly format: FileFormat,
    private readonly append: boolean,
    private readonly includeMetadata: boolean,
  ) {
    this.temp = path.join(path.dirname(final), tempName(path.basename(final)));
    if (format === 'csv') this.#csv = new CsvEncoder(includeMetadata);
    if (format === 'json') this.#json = new JsonArrayEncoder(includeMetadata);
  }

  /** Writes run one after another per file, whichever datasource they come from. */
  write(batch: MatchBatch, ctx: OperationContext): Promise<void> {
    const next = this.#chain.then(() => this.writeNow(batch, ctx));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  private async writeNow(batch: MatchBatch, ctx: OperationContext): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      if (!this.#out) await this.start(ctx);
      for (const piece of this.render(batch)) {
        if (ctx.signal.aborted) throw new CancelledError(`writing ${this.temp}`);
        await this.send(piece);
      }
      this.#records += batch.rows.length;
    } catch (err) {
      this.#failure ??= err as Error;
      throw err;
    }
  }

  private async start(ctx: OperationContext): Promise<void> {
    const dir = path.dirname(this.final);
    // Some paths never answer (a recursive mkdir under /proc spins forever): stop waiting when the run is cancelled.
    await untilAborted(mkdir(dir, { recursive: true }), ctx.signal, `creating folder ${dir}`);
    await removeStaleTempFiles(dir, ctx);
    this.#out = createWriteStream(this.temp, { highWaterMark: HIGH_WATER_MARK });
    await new Promise<void>((resolve, reject) => this.#out!.once('open', () => resolve()).once('error', reject));
    const existing = this.append && (await nonEmptyFile(this.final));
    if (existing && this.format === 'json') await this.continueJsonArray();
    else if (existing) await this.copyExisting();
    if (this.format === 'json' && !existing) await this.send(this.#json!.start);
  }

  /** Append mode: the old content goes first into the temp file, so the rename keeps it. */
  private async copyExisting(): Promise<void> {
    await pipeline(createReadStream(this.final), this.#out!, { end: false });
    // A file that does not end with a line break would glue its last line to our first.
    if (!(await endsWithLineBreak(this.final))) await this.send('\n');
    if (this.format === 'csv') this.#csv!.continueFrom(await csvHeader(this.final));
  }

  /** Append mode for a JSON array: copy it up to its closing bracket and go on from there. */
  private async continueJsonArray(): Promise<void> {
    const { closing, empty } = await jsonArrayEnd(this.final);
    if (empty) {
      await this.send(this.#json!.start);
      return;
    }
    await pipeline(createReadStream(this.final, { end: closing - 1 }), this.#out!, { end: false });
    this.#json!.continueNonEmpty();
  }

  /** The batch as text, in pieces of about 64 KiB. */
  private render(batch: MatchBatch): string[] {
    if (this.#csv) return this.#csv.encode(batch);
    if (this.#json) return this.#json.encode(batch);
    return toNdjsonPieces(batch, this.includeMetadata);
  }

  private send(text: string): Promise<void> {
    const out = this.#out!;
    if (out.destroyed || out.errored) return Promise.reject(out.errored ?? new Error(`writing ${this.temp}: the file was closed`));
    if (out.write(text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const settle = (err?: Error) => {
        out.off('drain', onDrain).off('error', onError).off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => settle();
      const onError = (err: Error) => settle(err);
      // A stream destroyed after an error emits neither drain nor a second error: without this the write would wait forever.
      const onClose = () => settle(out.errored ?? new Error(`writing ${this.temp}: the file was closed`));
      out.on('drain', onDrain).on('error', onError).on('close', onClose);
    });
  }

  /** Ends and syncs the temp file: after this only the rename is left, which makes it visible. */
  async finish(ctx: OperationContext): Promise<void> {
    await this.#chain;
    if (this.#failure) throw this.#failure;
    if (!this.#out) return;
    if (this.#json) await this.send(this.#json.end);
    await new Promise<void>((resolve, reject) => this.#out!.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (this.#csv?.grew) await this.padShortRows(ctx);
    await fsyncFile(this.temp);
    // Found now rather than at the rename, so the other files of the cycle are not published either.
    if ((await stat(this.final).catch(() => undefined))?.isDirectory()) throw new Error(`${this.final} is a folder`);
  }

  /**
   * Sparse records added columns after rows were written with fewer: rewrite the temp file with
   * the full header and every row padded to it, so the CSV stays rectangular.
   */
  private async padShortRows(ctx: OperationContext): Promise<void> {
    const { padCsvFile } = await import('./csv-pad.js');
    await padCsvFile(this.temp, this.#csv!.columns!, ctx.signal);
  }

  async publish(): Promise<number> {
    if (!this.#out) return 0;
    await rename(this.temp, this.final);
    return this.#records;
  }

  async discard(): Promise<void> {
    await this.#chain.catch(() => undefined);
    this.#out?.destroy();
    await rm(this.temp, { force: true });
  }
}

class FileSink implements Sink {
  readonly delivery = 'atomic' as const;
  #files = new Map<string, PendingFile>();
  readonly #format: FileFormat;

  constructor(
    private readonly config: FileSinkConfig,
    private readonly ctx: CreateContext,
  ) {
    this.#format = formatOf(config);
  }

  async write(batch: MatchBatch, ctx: OperationContext): Promise<void> {
    if (batch.rows.length === 0) return;
    const final = path.resolve(
      this.ctx.configDir,
      templateFor(this.config.path, PATH_TEMPLATE).render({ rule: batch.rule, datasource: batch.datasource, runId: batch.runId, matchedAt: batch.matchedAt }),
    );
    let file = this.#files.get(final);
    if (!file) {
      claimPath(final, this.ctx.name);
      file = new PendingFile(final, this.#format, this.config.mode !== 'overwrite', this.config.include_metadata !== false);
      this.#files.set(final, file);
    }
    await file.write(batch, ctx);
  }

  /**
   * Makes the cycle's files visible, all or none as far as the filesystem allows: every temp file
   * is finished and synced first, and only when all of them are does any rename happen.
   */
  async flush(ctx: OperationContext): Promise<void> {
    const files = [...this.#files.values()];
    this.#files = new Map();
    for (const file of files) releasePath(file.final, this.ctx.name);
    const finished = await Promise.allSettled(files.map((f) => f.finish(ctx)));
    const failed = finished.findIndex((r) => r.status === 'rejected');
    if (failed >= 0 || ctx.signal.aborted) {
      await Promise.all(files.map((f) => f.discard()));
      if (failed < 0) throw new CancelledError('publishing files');
      throw wrapError(`writing ${files[failed]!.final}; no file of this run was made visible`, (finished[failed] as PromiseRejectedResult).reason);
    }
    // From here on the files are published even if a signal arrives: renames are quick, and half a set is worse.
    for (const file of files) {
      try {
        const records = await file.publish();
        this.ctx.log.debug({ file: file.final, records }, 'file written');
      } catch (err) {
        await Promise.all(files.map((f) => f.discard()));
        throw wrapError(`renaming ${file.temp} to ${file.final}`, err);
      }
    }
  }

  async abort(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files = new Map();
    for (const file of files) releasePath(file.final, this.ctx.name);
    await Promise.all(files.map((f) => f.discard()));
  }

  /** The folder the path starts in (up to its first placeholder) exists or can be created, and takes a file. */
  async check(ctx: OperationContext): Promise<string> {
    const fixed = this.config.path.split('{')[0]!;
    const folder = path.resolve(this.ctx.configDir, fixed.endsWith('/') || fixed === '' ? fixed || '.' : path.dirname(fixed));
    let existing = folder;
    while (!(await stat(existing).catch(() => undefined))) existing = path.dirname(existing);
    if (!(await stat(existing)).isDirectory()) {
      throw new ConnectorError(`${existing} is not a folder, so ${folder} cannot be created`, { code: 'ENOTDIR' });
    }
    try {
      await untilAborted(access(existing, constants.W_OK), ctx.signal, `checking ${existing}`);
      if (existing === folder) {
        const probe = path.join(folder, tempName('check'));
        await writeFile(probe, '');
        await rm(probe, { force: true });
      }
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      throw wrapError(`${existing} is not writable`, err);
    }
    return existing === folder ? `writable: ${folder}` : `${folder} will be created in ${existing}`;
  }
}

/** Temp files are `.<name>.<pid>.<random>.tmp`, so a later run can tell a dead process's leftovers from a live one's. */
function tempName(base: string): string {
  return `.${base}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/;
const cleanedFolders = new Set<string>();
/**
 * Folders remembered as cleaned. A path with `{run_id}` or `{date}` in a folder makes a new folder
 * every cycle or day, and a service would otherwise remember each for as long as it runs; past
 * this many it forgets them all, and a folder written again is looked at once more (a readdir).
 */
export const CLEANED_FOLDERS_REMEMBERED = 1_024;

/**
 * A process killed mid-cycle (SIGKILL, an OOM kill, power loss) leaves its temp files behind,
 * some of them large. The first write into a folder removes those of processes that no longer
 * run. A live process's temp files, ours included, are left alone.
 */
async function removeStaleTempFiles(dir: string, ctx: OperationContext): Promise<void> {
  if (cleanedFolders.has(dir)) return;
  if (cleanedFolders.size >= CLEANED_FOLDERS_REMEMBERED) cleanedFolders.clear();
  cleanedFolders.add(dir);
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    const match = TEMP_FILE.exec(entry);
    if (!match || isRunning(Number(match[1]))) continue;
    await rm(path.join(dir, entry), { force: true });
    ctx.log.info({ file: path.join(dir, entry) }, 'removed a temporary file left by a process that was killed');
  }
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits for `work`, or stops waiting (the work itself cannot be stopped) as soon as the signal is aborted. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(new CancelledError(what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError(what));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Final paths being written, by target name. Two targets whose templates resolve to one file
 * (out/{rule}.ndjson and out/big.ndjson for rule "big") would each rename their temp file over
 * it and one target's records would be lost, so the second one fails instead.
 */
const pathOwners = new Map<string, string>();

function claimPath(final: string, target: string): void {
  const owner = pathOwners.get(final);
  if (owner !== undefined && owner !== target) {
    throw new Error(`${final}: export target "${owner}" writes this file too; give each file target its own path`);
  }
  pathOwners.set(final, target);
}

function releasePath(final: string, target: string): void {
  if (pathOwners.get(final) === target) pathOwners.delete(final);
}

async function nonEmptyFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).size > 0;
  } catch {
    return false;
  }
}

/** Where the closing bracket of a JSON array file sits, so appending can continue the array. */
async function jsonArrayEnd(file: string): Promise<{ closing: number; empty: boolean }> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const tailLength = Math.min(size, 64);
    const tail = Buffer.alloc(tailLength);
    await handle.read(tail, 0, tailLength, size - tailLength);
    const text = tail.toString('latin1').trimEnd();
    if (!text.endsWith(']')) {
      throw new Error(`cannot append to ${file}: it does not end with a JSON array; use mode: overwrite or format: ndjson`);
    }
    const closing = size - tailLength + text.length - 1;
    return { closing, empty: await onlyWhitespaceAfterOpening(handle, closing) };
  } finally {
    await handle.close();
  }
}

/** True when the bytes before `closing` are `[` and white space only: an empty array, however it was indented. */
async function onlyWhitespaceAfterOpening(handle: import('node:fs/promises').FileHandle, closing: number): Promise<boolean> {
  const chunk = Buffer.alloc(64 * 1024);
  let seenOpening = false;
  for (let at = 0; at < closing; at += chunk.length) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, closing - at), at);
    for (let i = 0; i < bytesRead; i++) {
      const c = chunk[i]!;
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      if (c === 0x5b && !seenOpening) {
        seenOpening = true;
        continue;
      }
      return false;
    }
  }
  return seenOpening;
}

async function endsWithLineBreak(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await handle.close();
  }
}

async function csvHeader(file: string): Promise<string[]> {
  return (await import('../csv/csv-header.js')).readCsvHeader(file, { delimiter: ',', quote: '"' });
}

/** The data reaches the disk before the rename makes it visible; otherwise a crash can leave an empty file in place. */
async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
