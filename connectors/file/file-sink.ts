import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { CreateContext, MatchBatch, Sink, SinkSpec } from '../types.js';
import { csvLine, exportColumns, exportRecords, OUTPUT_PIECE, toNdjsonPieces } from '../../src/records/export-record.js';
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
  #columns: string[] | undefined;
  #records = 0;
  #jsonNeedsComma = false;
  #chain: Promise<void> = Promise.resolve();
  /** The first write error: every later write and the commit fail with it instead of waiting on a dead stream. */
  #failure: Error | undefined;

  constructor(
    readonly final: string,
    private readonly format: FileFormat,
    private readonly append: boolean,
    private readonly includeMetadata: boolean,
  ) {
    this.temp = path.join(path.dirname(final), `.${path.basename(final)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  }

  /** Writes run one after another per file, whichever datasource they come from. */
  write(batch: MatchBatch): Promise<void> {
    const next = this.#chain.then(() => this.writeNow(batch));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  private async writeNow(batch: MatchBatch): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      if (!this.#out) await this.start(batch);
      this.checkColumns(batch);
      for (const piece of this.render(batch)) await this.send(piece);
      this.#records += batch.rows.length;
    } catch (err) {
      this.#failure ??= err as Error;
      throw err;
    }
  }

  /** A CSV file has one header: records with other columns would lose fields, so they fail the target instead. */
  private checkColumns(batch: MatchBatch): void {
    if (this.format !== 'csv') return;
    // Records of another shape fail whichever arrives first, so the outcome does not depend on timing.
    const columns = exportColumns(batch, this.includeMetadata);
    const header = this.#columns!;
    const extra = columns.filter((c) => !header.includes(c));
    const lacking = header.filter((c) => !columns.includes(c));
    if (extra.length === 0 && lacking.length === 0) return;
    const differences = [extra.length ? `columns ${extra.join(', ')} that the header lacks` : '', lacking.length ? `no ${lacking.join(', ')}` : '']
      .filter(Boolean)
      .join(' and ');
    throw new Error(
      `${this.final}: records of rule "${batch.rule}" from datasource "${batch.datasource}" have ${differences} ` +
        `(the file's header: ${header.join(', ')}); ` +
        'put {rule} or {datasource} in the path so each CSV file holds one shape of record, or use format: ndjson',
    );
  }

  private async start(batch: MatchBatch): Promise<void> {
    await mkdir(path.dirname(this.final), { recursive: true });
    this.#out = createWriteStream(this.temp, { highWaterMark: HIGH_WATER_MARK });
    await new Promise<void>((resolve, reject) => this.#out!.once('open', () => resolve()).once('error', reject));
    const existing = this.append && (await nonEmptyFile(this.final));
    if (existing && this.format === 'json') await this.continueJsonArray();
    else if (existing) await this.copyExisting();
    if (this.format === 'csv' && this.#columns === undefined) {
      this.#columns = exportColumns(batch, this.includeMetadata);
      await this.send(csvLine(this.#columns));
    }
    if (this.format === 'json' && !existing) await this.send('[\n');
  }

  /** Append mode: the old content goes first into the temp file, so the rename keeps it. */
  private async copyExisting(): Promise<void> {
    await pipeline(createReadStream(this.final), this.#out!, { end: false });
    // A file that does not end with a line break would glue its last line to our first.
    if (!(await endsWithLineBreak(this.final))) await this.send('\n');
    if (this.format === 'csv') this.#columns = await csvHeader(this.final);
  }

  /** Append mode for a JSON array: copy it up to its closing bracket and go on from there. */
  private async continueJsonArray(): Promise<void> {
    const { closing, empty } = await jsonArrayEnd(this.final);
    if (empty) {
      await this.send('[\n');
      return;
    }
    await pipeline(createReadStream(this.final, { end: closing - 1 }), this.#out!, { end: false });
    this.#jsonNeedsComma = true;
  }

  /** The batch as text, in pieces of about OUTPUT_PIECE characters. */
  private render(batch: MatchBatch): string[] {
    if (this.format === 'ndjson') return toNdjsonPieces(batch, this.includeMetadata);
    const pieces: string[] = [];
    let out = '';
    for (const record of exportRecords(batch, this.includeMetadata)) {
      if (this.format === 'csv') {
        out += csvLine(this.#columns!.map((c) => record[c]));
      } else {
        out += (this.#jsonNeedsComma ? ',\n' : '') + JSON.stringify(record);
        this.#jsonNeedsComma = true;
      }
      if (out.length >= OUTPUT_PIECE) {
        pieces.push(out);
        out = '';
      }
    }
    if (out.length > 0) pieces.push(out);
    return pieces;
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
  async finish(): Promise<void> {
    await this.#chain;
    if (this.#failure) throw this.#failure;
    if (!this.#out) return;
    if (this.format === 'json') await this.send('\n]\n');
    await new Promise<void>((resolve, reject) => this.#out!.end((err?: Error | null) => (err ? reject(err) : resolve())));
    await fsyncFile(this.temp);
    // Found now rather than at the rename, so the other files of the cycle are not published either.
    if ((await stat(this.final).catch(() => undefined))?.isDirectory()) throw new Error(`${this.final} is a folder`);
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
  #files = new Map<string, PendingFile>();
  readonly #format: FileFormat;

  constructor(
    private readonly config: FileSinkConfig,
    private readonly ctx: CreateContext,
  ) {
    this.#format = formatOf(config);
  }

  async write(batch: MatchBatch): Promise<void> {
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
    await file.write(batch);
  }

  /**
   * Makes the cycle's files visible, all or none as far as the filesystem allows: every temp file
   * is finished and synced first, and only when all of them are does any rename happen.
   */
  async flush(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files = new Map();
    for (const file of files) releasePath(file.final, this.ctx.name);
    const finished = await Promise.allSettled(files.map((f) => f.finish()));
    const failed = finished.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      await Promise.all(files.map((f) => f.discard()));
      throw new Error(`writing ${files[failed]!.final}: ${(finished[failed] as PromiseRejectedResult).reason?.message}; no file of this run was made visible`);
    }
    for (const file of files) {
      try {
        const records = await file.publish();
        this.ctx.log.debug({ file: file.final, records }, 'file written');
      } catch (err) {
        await Promise.all(files.map((f) => f.discard()));
        throw new Error(`renaming ${file.temp} to ${file.final}: ${(err as Error).message}`);
      }
    }
  }

  async abort(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files = new Map();
    for (const file of files) releasePath(file.final, this.ctx.name);
    await Promise.all(files.map((f) => f.discard()));
  }
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
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const firstLine = (buf.toString('utf8', 0, bytesRead).split(/\r?\n/, 1)[0] ?? '').replace(/^\uFEFF/, '');
    const { createCsvTokenizer } = await import('../csv/csv-tokenizer.js');
    const tokenizer = createCsvTokenizer({ delimiter: ',', quote: '"' });
    return [...tokenizer.push(firstLine + '\n'), ...tokenizer.end()][0] ?? [];
  } finally {
    await handle.close();
  }
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
