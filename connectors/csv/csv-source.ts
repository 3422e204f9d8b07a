import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import path from 'node:path';
import type { CreateContext, OperationContext, ReadContext, Source, SourceSpec } from '../types.js';
import { BATCH_VALUES_AT_MOST } from '../../src/records/batch-values.js';
import { ColumnLayout, type ColumnType, type RecordBatch } from '../../src/records/layout.js';
import { createCsvTokenizer, csvDialectProblems, CsvSyntaxError } from './csv-tokenizer.js';
import { uniqueColumnNames } from './csv-header.js';
import { redactUrl } from '../../src/util/redact.js';

export interface CsvSourceConfig {
  type: 'csv';
  path: string;
  delimiter?: string;
  quote?: string;
  encoding?: string;
  columns?: Record<string, ColumnType>;
  headers?: Record<string, string>;
  timeout?: number;
}

export const csvSource: SourceSpec<CsvSourceConfig> = {
  kind: 'source',
  type: 'csv',
  summary: 'Rows of CSV files: a local path, a glob, or an http(s) URL. The first row names the columns.',
  configSchema: {
    type: 'object',
    required: ['path'],
    properties: {
      path: {
        type: 'string',
        minLength: 1,
        description:
          'A file path (relative to the config file), a glob such as `data/*.csv` (files read in name order), or an http(s) URL.',
        examples: ['examples/data/sensors.csv', 'incoming/**/*.csv', 'https://example.com/export.csv'],
      },
      delimiter: { type: 'string', minLength: 1, maxLength: 1, default: ',', description: 'Field separator: one character, not a line break, and not the quote character.', examples: [';', '\t'] },
      quote: { type: 'string', minLength: 1, maxLength: 1, default: '"', description: 'Quote character, doubled inside a quoted field: one character, not a line break, and not the delimiter.' },
      encoding: {
        type: 'string',
        default: 'utf-8',
        description: 'Text encoding (a WHATWG label: utf-8, utf-16le, latin1, windows-1252...). A byte order mark is dropped.',
        examples: ['latin1'],
      },
      columns: {
        type: 'object',
        additionalProperties: { type: 'string', enum: ['string', 'number', 'timestamp', 'boolean'] },
        description:
          'Types of chosen columns, for export: numbers become JSON numbers, timestamps ISO 8601 UTC, booleans true/false. ' +
          'Untyped columns are exported as text. Rules compare numerically and by time whatever the type.',
        examples: [{ value: 'number', created_at: 'timestamp' }],
      },
      headers: {
        type: 'object',
        additionalProperties: { type: 'string' },
        description: 'HTTP headers for a URL path, e.g. `Authorization: "Bearer ${CSV_TOKEN}"`.',
      },
      timeout: { type: 'number', exclusiveMinimum: 0, default: 30, description: 'Seconds to wait for an HTTP response before giving up.' },
    },
  },
  validate(config) {
    // The schema already refused a delimiter or quote that is not a string.
    const problems: { key: string; message: string }[] = [...csvDialectProblems(config)];
    try {
      new TextDecoder(config.encoding ?? 'utf-8');
    } catch {
      problems.push({ key: 'encoding', message: `unknown encoding "${config.encoding}"; use a label such as utf-8, utf-16le, latin1 or windows-1252` });
    }
    return problems;
  },
  async create(config, ctx) {
    return new CsvSource(config, ctx);
  },
};

/** Bytes per file read: large, so the disk stays ahead of the parser. */
const READ_CHUNK = 64 * 1024;
/**
 * Text is decoded and tokenized in slices of this many bytes: a string over ~128 kB lands in
 * V8's large-object space, which only a full collection frees, so bigger pieces made RSS grow
 * with the input.
 */
const DECODE_SLICE = 64 * 1024;

function isUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

function isGlob(location: string): boolean {
  return /[*?[\]{}]/.test(location);
}

class CsvSource implements Source {
  #http: import('../../src/http/client.js').HttpClient | undefined;

  constructor(
    private readonly config: CsvSourceConfig,
    private readonly ctx: CreateContext,
  ) {}

  async *read(read: ReadContext): AsyncIterable<RecordBatch> {
    for (const location of await this.locations(read)) {
      if (read.signal.aborted) return;
      yield* this.readOne(location, read);
    }
  }

  /** The files (or the one URL) to read this cycle, resolved afresh each time so new files are picked up. */
  private async locations(read: ReadContext): Promise<string[]> {
    const { path: where } = this.config;
    if (isUrl(where)) return [where];
    const literal = path.resolve(this.ctx.configDir, where);
    // A file whose name holds [ ] { } * ? is read as that file, not as a pattern.
    if (!isGlob(where) || existsSync(literal)) return [literal];
    const { glob } = await import('tinyglobby');
    const files = (await glob(where, { cwd: this.ctx.configDir, absolute: true, onlyFiles: true })).sort();
    if (files.length === 0) read.log.warn({ path: where }, 'no file matches the glob; nothing to read this cycle');
    return files;
  }

  private async *readOne(location: string, read: ReadContext): AsyncIterable<RecordBatch> {
    const label = isUrl(location) ? redactUrl(location) : path.relative(this.ctx.configDir, location) || location;
    const bytes = isUrl(location) ? await this.fetch(location, read) : await this.openFile(location);
    const decoder = createDecoder(this.config.encoding ?? 'utf-8');
    const tokenizer = createCsvTokenizer({ delimiter: this.config.delimiter ?? ',', quote: this.config.quote ?? '"' });
    const rows = new RowBatcher(label, this.config.columns ?? {}, read);
    try {
      for await (const chunk of bytes) {
        const buffer = chunk as Buffer;
        for (let at = 0; at < buffer.length; at += DECODE_SLICE) {
          const text = decoder.write(buffer.subarray(at, at + DECODE_SLICE));
          for (const batch of rows.add(tokenizer.push(text))) yield batch;
        }
        if (read.signal.aborted) return;
      }
      for (const batch of rows.add(tokenizer.push(decoder.end()))) yield batch;
      for (const batch of rows.add(tokenizer.end())) yield batch;
      const last = rows.flush();
      if (last) yield last;
    } catch (err) {
      if (err instanceof CsvSyntaxError) throw new Error(`${label}: ${err.message}`);
      throw err;
    }
  }

  private async openFile(file: string): Promise<AsyncIterable<unknown>> {
    try {
      const info = await stat(file);
      if (info.isDirectory()) throw new Error(`${file} is a directory; to read every CSV in it use a glob such as ${path.join(file, '*.csv')}`);
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new Error(`cannot read ${file}: no such file; check path (relative paths start at the config file's folder)`);
      }
      throw err;
    }
    return createReadStream(file, { highWaterMark: READ_CHUNK });
  }

  /** The file (or the first file of the glob) opens, or the URL answers 2xx; only the first bytes are read. */
  async check(ctx: OperationContext): Promise<string> {
    const read: ReadContext = { ...ctx, batchSize: 1 };
    const locations = await this.locations(read);
    if (locations.length === 0) throw new Error(`no file matches ${this.config.path}`);
    const first = locations[0]!;
    const bytes = isUrl(first) ? await this.fetch(first, read) : await this.openFile(first);
    for await (const _chunk of bytes) break;
    const label = isUrl(first) ? redactUrl(first) : path.relative(this.ctx.configDir, first) || first;
    return locations.length > 1 ? `readable: ${label} and ${locations.length - 1} more` : `readable: ${label}`;
  }

  private async fetch(url: string, read: ReadContext): Promise<AsyncIterable<unknown>> {
    // Loaded here, so reading local files never loads the HTTP client.
    const { HttpClient } = await import('../../src/http/client.js');
    // A CSV export may be large: no size cap and no overall deadline, only the wait for each piece.
    this.#http ??= new HttpClient({ headers: this.config.headers ?? {}, timeoutMs: (this.config.timeout ?? 30) * 1000, maxResponseBytes: Infinity });
    const response = await this.#http.request({ url, signal: read.signal });
    return response.body;
  }

  async close(): Promise<void> {
    await this.#http?.close();
  }
}

interface Decoder {
  write(chunk: Buffer): string;
  end(): string;
}

/**
 * Bytes to text, keeping characters split across chunks whole and dropping a byte order mark.
 * UTF-8 goes through StringDecoder, about twice as fast as TextDecoder here; other encodings
 * through TextDecoder, which knows every WHATWG label.
 */
function createDecoder(encoding: string): Decoder {
  if (/^utf-?8$/i.test(encoding)) {
    const utf8 = new StringDecoder('utf8');
    let first = true;
    return {
      write(chunk) {
        const text = utf8.write(chunk);
        if (!first || text.length === 0) return text;
        first = false;
        return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
      },
      end: () => utf8.end(),
    };
  }
  const decoder = new TextDecoder(encoding);
  return { write: (chunk) => decoder.decode(chunk, { stream: true }), end: () => decoder.decode() };
}

/** Turns tokenized rows into batches: the first row of a file is its header, the rest are cut into batch-size slices. */
class RowBatcher {
  #layout: ColumnLayout | undefined;
  #rows: string[][] = [];
  #cells = 0;
  #warnedRagged = false;

  constructor(
    private readonly label: string,
    private readonly types: Record<string, ColumnType>,
    private readonly read: ReadContext,
  ) {}

  *add(rows: string[][]): Iterable<RecordBatch> {
    let start = 0;
    if (this.#layout === undefined && rows.length > 0) {
      this.#layout = this.layoutFromHeader(rows[0]!);
      start = 1;
    }
    for (let i = start; i < rows.length; i++) {
      const row = rows[i]!;
      if (row.length !== this.#layout!.columns.length) this.noteRagged(row.length);
      this.#rows.push(row);
      this.#cells += row.length;
      if (this.#rows.length >= this.read.batchSize || this.#cells >= BATCH_VALUES_AT_MOST) yield this.take();
    }
  }

  flush(): RecordBatch | undefined {
    return this.#rows.length > 0 ? this.take() : undefined;
  }

  private take(): RecordBatch {
    const batch = { layout: this.#layout!, rows: this.#rows };
    this.#rows = [];
    this.#cells = 0;
    return batch;
  }

  private layoutFromHeader(header: string[]): ColumnLayout {
    const names = this.uniqueNames(header.map((h) => h.trim()));
    const unknownTyped = Object.keys(this.types).filter((c) => !names.includes(c));
    if (unknownTyped.length > 0) {
      this.read.log.warn({ file: this.label, columns: unknownTyped, header: names }, 'typed columns not in the header are ignored');
    }
    return new ColumnLayout(names, this.types);
  }

  /** Repeated names are renamed (see uniqueColumnNames) and the file is named in a warning. */
  private uniqueNames(header: string[]): string[] {
    const { names, renamed } = uniqueColumnNames(header);
    if (renamed.length > 0) this.read.log.warn({ file: this.label, renamed }, 'repeated column names in the header were renamed');
    return names;
  }

  private noteRagged(length: number): void {
    if (this.#warnedRagged) return;
    this.#warnedRagged = true;
    this.read.log.warn(
      { file: this.label, fields: length, header_fields: this.#layout!.columns.length },
      'a row has a different number of fields than the header: missing fields read as empty, extra fields are ignored',
    );
  }
}
