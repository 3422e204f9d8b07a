/**
 * The objects of one key during a cycle: the key rendered with {part} = 1, 2, ... An object ends
 * and the next part begins when it holds `max_records_per_object` records, or when a batch does
 * not fit its shape (CSV columns, Parquet schema). Writes to one series run one after another.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { MatchBatch, OperationContext } from '../types.js';
import { CancelledError, ConnectorError } from '../../src/errors.js';
import { createContent, contentTypeOf, type ContentOptions, type ObjectContent } from './s3-content.js';
import type { S3CallOptions } from './s3-client.js';
import { objectMetadata, type MetadataSources } from './s3-metadata.js';
import { PendingObject } from './s3-object.js';

export interface SeriesSettings {
  readonly client: S3Client;
  readonly bucket: string;
  /** The key of part n (1, 2, ...). */
  readonly keyOf: (part: number) => string;
  /** Whether the key has {part}: without it a series holds one object only. */
  readonly hasPart: boolean;
  readonly content: ContentOptions;
  readonly maxRecords: number;
  readonly partSize: number;
  readonly call: Omit<S3CallOptions, 'signal'>;
  readonly format: string;
}

interface OpenObject {
  readonly object: PendingObject;
  readonly content: ObjectContent;
  records: number;
  readonly rules: Set<string>;
  readonly datasources: Set<string>;
  readonly runId: string;
}

export class ObjectSeries {
  #open: OpenObject | undefined;
  readonly #sealed: { object: PendingObject; records: number }[] = [];
  /** Objects being closed: neither open nor sealed yet, and still to abort if the run fails now. */
  readonly #closing = new Set<PendingObject>();
  #part = 0;
  #chain: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  /** The signal of the call in progress: the bytes an encoder emits are uploaded under it. */
  #signal: AbortSignal = new AbortController().signal;

  constructor(private readonly settings: SeriesSettings) {}

  write(batch: MatchBatch, ctx: OperationContext): Promise<void> {
    const next = this.#chain.then(() => this.writeNow(batch, ctx));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Ends the last object (footer, last part); what is left is to publish the sealed objects. */
  async seal(ctx: OperationContext): Promise<{ object: PendingObject; records: number }[]> {
    await this.#chain;
    if (this.#failure) throw this.#failure;
    if (this.#open) await this.close(this.#open, false, ctx.signal);
    this.#open = undefined;
    return this.#sealed;
  }

  /** Aborts every upload of the series; none of its objects becomes visible. */
  async discard(signal: AbortSignal): Promise<void> {
    // A write waiting for a stalled part would hold the discard up to idle_timeout per attempt: the parts stop first.
    for (const object of this.objects()) object.stopUploads();
    await this.#chain.catch(() => undefined);
    const objects = this.objects();
    this.#open = undefined;
    this.#sealed.length = 0;
    this.#closing.clear();
    const results = await Promise.allSettled(objects.map((o) => o.discard(signal)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  private objects(): PendingObject[] {
    return [...new Set([...this.#sealed.map((s) => s.object), ...this.#closing, ...(this.#open ? [this.#open.object] : [])])];
  }

  private async writeNow(batch: MatchBatch, ctx: OperationContext): Promise<void> {
    if (this.#failure) throw this.#failure;
    this.#signal = ctx.signal;
    try {
      const { rows } = batch;
      for (let offset = 0; offset < rows.length; ) {
        if (ctx.signal.aborted) throw new CancelledError(`writing to ${this.settings.bucket}`);
        if (this.#open && this.#open.records >= this.settings.maxRecords) await this.rollOver(ctx);
        const room = this.#open ? this.settings.maxRecords - this.#open.records : this.settings.maxRecords;
        const take = Math.min(room, rows.length - offset);
        const slice = offset === 0 && take === rows.length ? batch : { ...batch, rows: rows.slice(offset, offset + take) };
        const open = this.#open ?? this.start(slice);
        let prepared = open.content.prepare(slice);
        let target = open;
        if (prepared === undefined) {
          // The batch does not fit this object's shape: it begins the next part.
          await this.rollOver(ctx);
          target = this.start(slice);
          prepared = target.content.prepare(slice);
        }
        await target.content.write(prepared);
        target.records += take;
        target.rules.add(batch.rule);
        target.datasources.add(batch.datasource);
        offset += take;
      }
    } catch (err) {
      this.#failure ??= err as Error;
      throw err;
    }
  }

  private start(batch: MatchBatch): OpenObject {
    this.#part++;
    if (this.#part > 1 && !this.settings.hasPart) {
      throw new ConnectorError(
        `s3://${this.settings.bucket}/${this.settings.keyOf(1)}: a second object is needed (max_records_per_object reached, or records of another shape), ` +
          'and the key has no {part} to tell them apart; add {part} to the key',
        { code: 'KEY_NEEDS_PART', details: { bucket: this.settings.bucket, key: this.settings.keyOf(1) } },
      );
    }
    const { settings } = this;
    const sources = { rules: new Set([batch.rule]), datasources: new Set([batch.datasource]), runId: batch.runId };
    const object = new PendingObject(
      settings.client,
      settings.bucket,
      settings.keyOf(this.#part),
      { contentType: contentTypeOf(settings.content) },
      settings.partSize,
      settings.call,
      () => this.metadataOf(sources),
    );
    const content = createContent(settings.content, {
      bytes: (bytes) => object.append(bytes, this.#signal),
      text: (text) => object.appendText(text, this.#signal),
    });
    this.#open = { object, content, records: 0, ...sources };
    return this.#open;
  }

  private async rollOver(ctx: OperationContext): Promise<void> {
    const open = this.#open!;
    this.#open = undefined;
    await this.close(open, true, ctx.signal);
  }

  private async close(open: OpenObject, mustUpload: boolean, signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    const metadata = { ...this.metadataOf(open), records: String(open.records) };
    this.#closing.add(open.object);
    await open.content.finish(metadata);
    await open.object.seal(metadata, mustUpload, signal);
    this.#closing.delete(open.object);
    this.#sealed.push({ object: open.object, records: open.records });
  }

  private metadataOf(open: MetadataSources): Record<string, string> {
    return objectMetadata(open, this.settings.format);
  }
}
