/**
 * What goes into one object, by format: the shared encoders of src/encoding turn batches into
 * bytes, which stream into the object's parts. An object holds records of one shape: a batch
 * that does not fit (new CSV columns, Parquet values its columns cannot hold) is refused by
 * `prepare`, and the caller starts the next object.
 */
import { constants as zlibConstants, createGzip, type Gzip } from 'node:zlib';
import type { MatchBatch } from '../types.js';
import { CsvEncoder } from '../../src/encoding/csv.js';
import { JsonArrayEncoder } from '../../src/encoding/json.js';
import { toNdjsonPieces } from '../../src/encoding/ndjson.js';
import { mergeRaw, ParquetEncoder, prepareFor, prepareNew, rawColumns, type ParquetColumn, type ParquetCompression, type PreparedColumns, type RawColumns } from '../../src/encoding/parquet.js';
import { exportColumns } from '../../src/records/export-record.js';

export type S3Format = 'parquet' | 'csv' | 'json' | 'ndjson';

export interface ContentOptions {
  readonly format: S3Format;
  /** gzip for the text formats; snappy, gzip or none for Parquet. */
  readonly compression: 'gzip' | 'snappy' | 'none';
  readonly includeMetadata: boolean;
  readonly rowGroupRows: number;
}

/** Where a content writes its bytes, or its text as UTF-8. */
export interface ByteOut {
  bytes(bytes: Uint8Array): Promise<void>;
  text(text: string): Promise<void>;
}

export interface ObjectContent {
  /** The batch made ready for this object, or undefined when it does not fit the object's shape. */
  prepare(batch: MatchBatch): unknown;
  write(prepared: unknown): Promise<void>;
  /** Writes what ends the object (a closing bracket, a Parquet footer) and flushes compression. */
  finish(metadata: Readonly<Record<string, string>>): Promise<void>;
}

export function extensionOf(options: Pick<ContentOptions, 'format' | 'compression'>): string {
  return options.format !== 'parquet' && options.compression === 'gzip' ? `${options.format}.gz` : options.format;
}

const CONTENT_TYPES: Record<S3Format, string> = {
  ndjson: 'application/x-ndjson',
  json: 'application/json',
  csv: 'text/csv; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
};

/** A gzipped text object is a .gz file: its type says gzip, so tools that fetch it do not unpack it behind the reader's back. */
export function contentTypeOf(options: Pick<ContentOptions, 'format' | 'compression'>): string {
  return options.format !== 'parquet' && options.compression === 'gzip' ? 'application/gzip' : CONTENT_TYPES[options.format];
}

export function createContent(options: ContentOptions, out: ByteOut): ObjectContent {
  if (options.format === 'parquet') return new ParquetContent(options, out);
  const text = options.compression === 'gzip' ? new GzipText(out) : new PlainText(out);
  switch (options.format) {
    case 'ndjson':
      return new NdjsonContent(options.includeMetadata, text);
    case 'json':
      return new JsonContent(options.includeMetadata, text);
    case 'csv':
      return new CsvContent(options.includeMetadata, text);
  }
}

interface TextOut {
  write(pieces: readonly string[]): Promise<void>;
  end(): Promise<void>;
}

class PlainText implements TextOut {
  constructor(private readonly out: ByteOut) {}

  async write(pieces: readonly string[]): Promise<void> {
    for (const piece of pieces) await this.out.text(piece);
  }

  async end(): Promise<void> {}
}

/**
 * One gzip stream over the whole object. Each write ends with a sync flush so that its bytes
 * reach the object (and memory stays bounded); a flush per batch of thousands of records costs
 * a few bytes of compression.
 */
class GzipText implements TextOut {
  readonly #gzip: Gzip = createGzip();
  #ready: Buffer[] = [];
  #error: Error | undefined;

  constructor(private readonly out: ByteOut) {
    this.#gzip.on('data', (chunk: Buffer) => this.#ready.push(chunk));
    this.#gzip.on('error', (err) => (this.#error = err));
  }

  async write(pieces: readonly string[]): Promise<void> {
    for (const piece of pieces) this.#gzip.write(piece);
    await new Promise<void>((resolve) => this.#gzip.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
    await this.drain();
  }

  async end(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#gzip.once('end', resolve).once('error', reject);
      this.#gzip.end();
      this.#gzip.resume();
    });
    await this.drain();
  }

  private async drain(): Promise<void> {
    if (this.#error) throw this.#error;
    const ready = this.#ready;
    this.#ready = [];
    for (const chunk of ready) await this.out.bytes(chunk);
  }
}

class NdjsonContent implements ObjectContent {
  constructor(
    private readonly includeMetadata: boolean,
    private readonly text: TextOut,
  ) {}

  prepare(batch: MatchBatch): MatchBatch {
    return batch;
  }

  write(batch: unknown): Promise<void> {
    return this.text.write(toNdjsonPieces(batch as MatchBatch, this.includeMetadata));
  }

  finish(): Promise<void> {
    return this.text.end();
  }
}

class JsonContent implements ObjectContent {
  readonly #encoder: JsonArrayEncoder;
  #started = false;

  constructor(
    includeMetadata: boolean,
    private readonly text: TextOut,
  ) {
    this.#encoder = new JsonArrayEncoder(includeMetadata);
  }

  prepare(batch: MatchBatch): MatchBatch {
    return batch;
  }

  async write(batch: unknown): Promise<void> {
    const pieces = this.#encoder.encode(batch as MatchBatch);
    if (!this.#started) pieces.unshift(this.#encoder.start);
    this.#started = true;
    await this.text.write(pieces);
  }

  async finish(): Promise<void> {
    await this.text.write([this.#started ? this.#encoder.end : this.#encoder.start + this.#encoder.end]);
    await this.text.end();
  }
}

/** CSV takes its header from the object's first batch; a batch with a column the header lacks starts the next object. */
class CsvContent implements ObjectContent {
  readonly #encoder: CsvEncoder;

  constructor(
    private readonly includeMetadata: boolean,
    private readonly text: TextOut,
  ) {
    this.#encoder = new CsvEncoder(includeMetadata);
  }

  prepare(batch: MatchBatch): MatchBatch | undefined {
    const header = this.#encoder.columns;
    if (header === undefined) return batch;
    const known = new Set(header);
    return exportColumns(batch, this.includeMetadata).every((c) => known.has(c)) ? batch : undefined;
  }

  write(batch: unknown): Promise<void> {
    return this.text.write(this.#encoder.encode(batch as MatchBatch));
  }

  finish(): Promise<void> {
    return this.text.end();
  }
}

/**
 * Parquet takes its schema from the object's records (see src/encoding/parquet.ts). Until the
 * first row group is written, a batch the schema cannot hold widens it: the object starts over
 * with a schema derived from every record so far (kept as they came) and the batch. Once a row
 * group is written, such a batch begins the next object.
 */
class ParquetContent implements ObjectContent {
  #encoder: Promise<ParquetEncoder> | undefined;
  #columns: readonly ParquetColumn[] | undefined;
  /** The raw columns of every batch so far, while the schema may still change; undefined once it cannot. */
  #raws: RawColumns[] | undefined = [];
  #keptRows = 0;
  #restarts = 0;

  constructor(
    private readonly options: ContentOptions,
    private readonly out: ByteOut,
  ) {}

  prepare(batch: MatchBatch): PreparedColumns | Rebuilt | undefined {
    const raw = rawColumns(batch, this.options.includeMetadata);
    if (this.#columns === undefined) {
      const prepared = prepareNew(raw);
      this.#columns = prepared.columns;
      this.keep(raw);
      return prepared;
    }
    const fits = prepareFor(this.#columns, raw);
    if (fits || this.#raws === undefined) {
      if (fits) this.keep(raw);
      return fits;
    }
    const rebuilt = prepareNew(mergeRaw([...this.#raws, raw]), this.#columns);
    this.#restarts++;
    this.keep(raw);
    this.#columns = rebuilt.columns;
    return { rebuilt };
  }

  /**
   * Keeps the batch's raw columns for widening, within bounds: not once its rows fill the first
   * row group (writing it fixes the schema anyway), past WIDEN_ROWS_AT_MOST records (a large
   * row_group_size would hold them twice), or past WIDEN_TIMES_AT_MOST restarts (each converts
   * every record so far again: a field added batch after batch would cost quadratic time).
   */
  private keep(raw: RawColumns): void {
    if (this.#raws === undefined) return;
    this.#keptRows += raw.rows;
    const full = this.#keptRows >= Math.min(this.options.rowGroupRows, WIDEN_ROWS_AT_MOST);
    if (full || this.#restarts >= WIDEN_TIMES_AT_MOST) this.#raws = undefined;
    else this.#raws.push(raw);
  }

  async write(prepared: unknown): Promise<void> {
    this.#encoder ??= ParquetEncoder.create(this.#columns!, {
      compression: this.options.compression as ParquetCompression,
      rowGroupRows: this.options.rowGroupRows,
      emit: (bytes) => this.out.bytes(bytes),
    });
    const encoder = await this.#encoder;
    if ((prepared as Rebuilt).rebuilt) await encoder.restart((prepared as Rebuilt).rebuilt);
    else await encoder.append(prepared as PreparedColumns);
    // A row group is written: the schema is fixed, and the records kept for widening it can go.
    if (encoder.begun) this.#raws = undefined;
  }

  async finish(metadata: Readonly<Record<string, string>>): Promise<void> {
    await (await this.#encoder!).finish(metadata);
  }
}

/** Records kept to widen an object's schema: past this, a batch that does not fit begins the next object. */
const WIDEN_ROWS_AT_MOST = 50_000;

/** Times an object's schema may widen. */
const WIDEN_TIMES_AT_MOST = 16;

/** Every record of the object so far with the batch, under a wider schema. */
interface Rebuilt {
  readonly rebuilt: PreparedColumns;
}
