/**
 * One object being uploaded during a cycle, in bounded memory, and made visible only when the
 * cycle is published.
 *
 * Bytes are gathered into parts of `partSize`; each full part is uploaded at once as a part of a
 * multipart upload (one in flight while the next fills), so memory holds about two parts per open
 * object, whatever the object's size. Nothing is visible until `publish`: a multipart upload
 * shows no object before CompleteMultipartUpload. An object smaller than one part is sent with a
 * single PutObject at publish, unless it is closed early (a `max_records_per_object` roll-over),
 * when it goes up as a one-part multipart upload so that its bytes leave memory.
 *
 * @aws-sdk/lib-storage's Upload is not used: it completes the upload when its input ends, and
 * cannot hold a finished object back until the end of the cycle without keeping its last part
 * in memory.
 */
import { createHash } from 'node:crypto';
import type { HeadObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { sleep } from '../../src/delivery/retry.js';
import { ConnectorError, serializeError } from '../../src/errors.js';
import { linkedSignal } from '../../src/util/linked-signal.js';
import { s3Call, s3Url, type S3CallOptions } from './s3-client.js';

/** The largest object S3 copies in one CopyObject. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;

/** S3 refuses a multipart upload of more parts than this. */
const MAX_PARTS = 10_000;

/**
 * Parts uploading at once per object while the next one fills; memory holds this many parts plus
 * the one filling. Two in flight were measured against s3rver: no faster (the server, not the
 * request, was the limit) and 17 MiB more peak RSS.
 */
const PARTS_IN_FLIGHT = 1;

/**
 * While a part is uploading, encoding stops for one turn of the event loop after this many bytes.
 * Encoding a batch awaits only promises that are already settled, so without a turn the socket
 * never gets to write more of the part than the kernel took at once: measured against s3rver,
 * each 8 MiB part then took ~250 ms instead of ~110 ms, and the upload did not overlap encoding.
 */
const YIELD_EVERY_BYTES = 512 * 1024;

/**
 * After an abort that followed a part cut off in flight: when to ask whether a part landed
 * anyway (ms after the abort, then after that). A cut request that reached the server is stored
 * within moments; the two checks add at most a second and a half to a cancelled run's cleanup.
 */
const LATE_PART_CHECKS_MS = [250, 1_250];

export interface ObjectHeaders {
  readonly contentType: string;
  readonly contentEncoding?: string;
}

type CallOptions = Omit<S3CallOptions, 'signal'>;

export class PendingObject {
  /** The part being filled. */
  #part = new PartBuffer();
  /** Full-size buffers whose uploads have finished, reused for the next parts. */
  #spare: Buffer[] = [];
  #uploadId: string | undefined;
  readonly #parts: { PartNumber: number; ETag: string }[] = [];
  /** Part uploads in flight, oldest first: a failure surfaces at a later append or at seal. */
  #inFlight: Promise<void>[] = [];
  /** Stops the part uploads in flight when the object is discarded: there is no point finishing them. */
  readonly #partUploads = new AbortController();
  /**
   * A part request ended without a definite answer (cut off, timed out, a 5xx): the server may
   * still store that part, after an abort too (see abortAgainIfPartsLanded).
   */
  #partMayLand = false;
  #bytes = 0;
  /** Metadata given when the object is created; set at seal, or earlier (without the record count) if a part had to go first. */
  #metadata: Record<string, string> | undefined;
  #metadataComplete = false;
  #sealed = false;
  /** Bytes appended since encoding last let the event loop turn. */
  #sinceYield = 0;

  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
    readonly key: string,
    private readonly headers: ObjectHeaders,
    private readonly partSize: number,
    private readonly call: CallOptions,
    /** Metadata known before the object ends (rule, run id...), for a multipart upload begun early. */
    private readonly earlyMetadata: () => Record<string, string>,
  ) {}

  get bytes(): number {
    return this.#bytes;
  }

  get url(): string {
    return s3Url(this);
  }

  /** Adds bytes; waits while a full part is being uploaded (backpressure). */
  async append(bytes: Uint8Array, signal: AbortSignal): Promise<void> {
    for (let offset = 0; offset < bytes.length; ) {
      const taken = this.#part.copy(bytes, offset, this.partSize);
      offset += taken;
      this.#bytes += taken;
      if (this.#part.used >= this.partSize) await this.sendBufferedPart(signal);
      else await this.letUploadsProgress(taken);
    }
  }

  /** Adds text as UTF-8, written straight into the part (no buffer per piece). */
  async appendText(text: string, signal: AbortSignal): Promise<void> {
    const written = this.#part.write(text, this.partSize);
    this.#bytes += written;
    if (this.#part.used >= this.partSize) await this.sendBufferedPart(signal);
    else await this.letUploadsProgress(written);
  }

  /** Gives a part upload in flight a turn of the event loop now and then (see YIELD_EVERY_BYTES). */
  private async letUploadsProgress(bytes: number): Promise<void> {
    this.#sinceYield += bytes;
    if (this.#sinceYield < YIELD_EVERY_BYTES || this.#inFlight.length === 0) return;
    this.#sinceYield = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * The object is complete: the rest of its bytes go up as its last part (when it is a multipart
   * upload, or `mustUpload`), so only the completion is left for publish. A small object not
   * forced up keeps its bytes for a single PutObject at publish.
   */
  async seal(metadata: Record<string, string>, mustUpload: boolean, signal: AbortSignal): Promise<void> {
    this.#sealed = true;
    if (this.#uploadId === undefined) {
      this.#metadata = metadata;
      this.#metadataComplete = true;
      if (!mustUpload) return;
    } else {
      this.#metadata = metadata;
    }
    await this.sendBufferedPart(signal, true);
    await Promise.all(this.#inFlight);
    this.#inFlight = [];
    // Every byte is uploaded: a sealed object waiting for publish holds no buffer (a run of many objects would hold two parts each).
    this.#part = new PartBuffer(Buffer.alloc(0));
    this.#spare = [];
  }

  /** Makes the object visible: completes its multipart upload, or puts it whole. */
  async publish(signal: AbortSignal): Promise<void> {
    if (!this.#sealed) throw new Error(`${this.url}: published before it was sealed`);
    if (this.#uploadId === undefined) {
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      const body = this.#part.take();
      this.#part = new PartBuffer();
      await this.unlessItLanded(
        signal,
        () =>
          s3Call('uploading', this, { ...this.call, signal }, (abortSignal) =>
            this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: body, ...this.objectHeaders(this.#metadata!) }), { abortSignal }),
          ),
        () => this.holdsThisObject(signal, (etag) => etag === `"${createHash('md5').update(body).digest('hex')}"`),
      );
      return;
    }
    const { CompleteMultipartUploadCommand } = await import('@aws-sdk/client-s3');
    const uploadId = this.#uploadId;
    await this.unlessItLanded(
      signal,
      () =>
        s3Call('completing the upload of', this, { ...this.call, signal }, (abortSignal) =>
          this.client.send(
            new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: uploadId, MultipartUpload: { Parts: this.#parts } }),
            { abortSignal },
          ),
        ),
      () => this.uploadCompleted(signal, uploadId),
    );
    this.#uploadId = undefined;
    if (!this.#metadataComplete) await this.completeMetadata(signal);
  }

  /**
   * The upload began before the record count was known: a copy onto itself sets the full
   * metadata. The object is already complete and correct, so a copy the server refuses (S3 copies
   * at most 5 GiB at once) costs only the metadata, and is logged rather than failing the run.
   */
  private async completeMetadata(signal: AbortSignal): Promise<void> {
    if (this.#bytes > MAX_COPY_BYTES) {
      this.call.log.warn({ bucket: this.bucket, key: this.key, bytes: this.#bytes }, 'object over 5 GiB: its metadata lacks the record count; set max_records_per_object for smaller objects');
      return;
    }
    const { CopyObjectCommand } = await import('@aws-sdk/client-s3');
    try {
      await s3Call('setting the metadata of', this, { ...this.call, signal }, (abortSignal) =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: this.key,
            CopySource: `${this.bucket}/${encodeURIComponent(this.key).replace(/%2F/g, '/')}`,
            MetadataDirective: 'REPLACE',
            ...this.objectHeaders(this.#metadata!),
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      this.call.log.warn({ err: serializeError(err), bucket: this.bucket, key: this.key }, 'the object was uploaded, but its metadata could not be completed with the record count');
    }
  }

  /**
   * Drops what was uploaded and not published: parts still uploading are stopped, and the
   * multipart upload is aborted, so no part is left on the server.
   */
  async discard(signal: AbortSignal): Promise<void> {
    this.#part = new PartBuffer();
    this.#spare = [];
    this.stopUploads();
    await Promise.allSettled(this.#inFlight);
    this.#inFlight = [];
    const uploadId = this.#uploadId;
    if (uploadId === undefined) return;
    this.#uploadId = undefined;
    await this.abortUpload(uploadId, signal);
    if (this.#partMayLand) await this.abortAgainIfPartsLanded(uploadId, signal);
  }

  /**
   * Stops the part uploads in flight: the object is being discarded, and waiting for a stalled
   * part could use the whole cleanup time (idle_timeout on each attempt) before the abort is even
   * sent. A part cut off so may still land: #partMayLand says so, and discard checks.
   */
  stopUploads(): void {
    this.#partUploads.abort();
  }

  /** Aborts the multipart upload; one already gone (NoSuchUpload: an earlier attempt's answer was lost) counts as aborted. */
  private async abortUpload(uploadId: string, signal: AbortSignal): Promise<void> {
    const { AbortMultipartUploadCommand } = await import('@aws-sdk/client-s3');
    try {
      await s3Call('aborting the upload of', this, { ...this.call, signal }, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: uploadId }), { abortSignal }),
      );
    } catch (err) {
      if ((err as { code?: string }).code !== 'NoSuchUpload') throw err;
    }
  }

  /**
   * A part whose request was cut off (the run was cancelled, the connection dropped) may still be
   * stored by the server after the abort, and its storage then stays: S3 documents that an abort
   * may have to be repeated while parts upload, and that ListParts tells whether any are left. So
   * after such a cut, the upload is asked about a little later, twice, and aborted again while it
   * holds parts; where ListParts is refused (no s3:ListMultipartUploadParts), it is aborted again
   * without asking.
   */
  private async abortAgainIfPartsLanded(uploadId: string, signal: AbortSignal): Promise<void> {
    const { ListPartsCommand } = await import('@aws-sdk/client-s3');
    for (const wait of LATE_PART_CHECKS_MS) {
      await sleep(wait, signal, 'waiting for parts cut off in flight');
      let parts = 1;
      try {
        const listed = await s3Call('listing the parts of', this, { ...this.call, signal }, (abortSignal) =>
          this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: this.key, UploadId: uploadId }), { abortSignal }),
        );
        parts = listed.Parts?.length ?? 0;
      } catch (err) {
        if ((err as { code?: string }).code === 'NoSuchUpload') continue;
        if (signal.aborted) throw err;
        this.call.log.debug({ err: serializeError(err), bucket: this.bucket, key: this.key }, 'the parts of an aborted upload cannot be listed; aborting it again without asking');
      }
      if (parts > 0) await this.abortUpload(uploadId, signal);
    }
  }

  /**
   * Runs the completion (or put) that makes the object visible; when it fails after its retries,
   * asks the server whether it landed anyway: an attempt whose answer was lost (a dropped
   * connection, a proxy timeout) may have completed the upload, and its retries then fail only
   * because the upload is gone. Only proof that the key holds this very object counts.
   */
  private async unlessItLanded(signal: AbortSignal, publish: () => Promise<unknown>, landed: () => Promise<boolean>): Promise<void> {
    try {
      await publish();
    } catch (err) {
      if (signal.aborted || !(await landed().catch(() => false))) throw err;
      this.call.log.warn({ err: serializeError(err), bucket: this.bucket, key: this.key }, 'the answer to publishing the object was lost, but the object is there, complete: published');
    }
  }

  /**
   * Whether the multipart upload was completed: the server no longer lists its parts
   * (NoSuchUpload; an upload still open was not completed, and is aborted by the caller), and the
   * key holds an object with this run's id and size, whose ETag, where the server makes it as S3
   * does (the MD5 of the parts' MD5s, "-" and their count), is this upload's. ListParts, not an
   * abort, is the question: it changes nothing, so a lost answer is simply asked again, and some
   * servers answer an abort of a finished upload with success.
   */
  private async uploadCompleted(signal: AbortSignal, uploadId: string): Promise<boolean> {
    const { ListPartsCommand } = await import('@aws-sdk/client-s3');
    try {
      await s3Call('listing the parts of', this, { ...this.call, signal }, (abortSignal) =>
        this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: this.key, UploadId: uploadId, MaxParts: 1 }), { abortSignal }),
      );
      return false;
    } catch (err) {
      if ((err as { code?: string }).code !== 'NoSuchUpload') {
        this.call.log.warn({ err: serializeError(err), bucket: this.bucket, key: this.key }, 'whether the upload was completed cannot be told: ListParts needs s3:ListMultipartUploadParts');
        return false;
      }
    }
    return this.holdsThisObject(signal, (etag) => !/-\d+"?$/.test(etag) || etag === this.multipartEtag());
  }

  /** The ETag S3 gives a completed multipart upload: the MD5 of the parts' binary MD5s, then "-" and the count. */
  private multipartEtag(): string {
    const digests = this.#parts.map((p) => Buffer.from(p.ETag.replace(/"/g, ''), 'hex'));
    return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${this.#parts.length}"`;
  }

  /**
   * Whether the key holds an object with this run's id and this object's size, and an ETag
   * `etagMatches` accepts (a single put's is the MD5 of its bytes, unless the bucket encrypts
   * with KMS: then it is not proof, and the publish stays failed).
   */
  private async holdsThisObject(signal: AbortSignal, etagMatches: (etag: string) => boolean): Promise<boolean> {
    try {
      const head = await this.head(signal);
      return head !== undefined && head.Metadata?.['run-id'] === this.earlyMetadata()['run-id'] && head.ContentLength === this.#bytes && etagMatches(head.ETag ?? '');
    } catch (err) {
      if ((err as { code?: string }).code === 'Forbidden') {
        this.call.log.warn({ err: serializeError(err), bucket: this.bucket, key: this.key }, 'whether the object landed cannot be checked: HeadObject needs s3:GetObject');
      }
      return false;
    }
  }

  /**
   * Undoes a publish that failed: the multipart upload is aborted if it is still open; and since
   * the completion (or put) may have landed with only its answer lost, the object is removed if
   * it is this run's (its run-id metadata says so; an earlier run's object at the key is kept).
   */
  async undoFailedPublish(signal: AbortSignal): Promise<void> {
    await this.discard(signal).catch((err: unknown) =>
      this.call.log.warn(
        { err: serializeError(err), bucket: this.bucket, key: this.key },
        'the upload could not be aborted: its parts stay on the server until removed (a lifecycle rule with AbortIncompleteMultipartUpload does it)',
      ),
    );
    const runId = (await this.head(signal))?.Metadata?.['run-id'];
    if (runId !== undefined && runId === this.earlyMetadata()['run-id']) await this.remove(signal);
  }

  /** What the server holds at the key; undefined when it holds nothing. */
  private async head(signal: AbortSignal): Promise<HeadObjectCommandOutput | undefined> {
    const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
    try {
      return await s3Call('checking', this, { ...this.call, signal }, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key }), { abortSignal }),
      );
    } catch (err) {
      if ((err as { details?: { status?: number } }).details?.status === 404) return undefined;
      throw err;
    }
  }

  /** Removes the published object again: a later object of the same cycle failed to publish. */
  async remove(signal: AbortSignal): Promise<void> {
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    await s3Call('removing', this, { ...this.call, signal }, (abortSignal) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key }), { abortSignal }),
    );
  }

  private objectHeaders(metadata: Record<string, string>) {
    return {
      ContentType: this.headers.contentType,
      ...(this.headers.contentEncoding ? { ContentEncoding: this.headers.contentEncoding } : {}),
      Metadata: metadata,
    };
  }

  /**
   * Uploads the buffered bytes as the next part; with PARTS_IN_FLIGHT uploads going, waits for the
   * oldest first. `last` sends even a short part (or an empty first one).
   */
  private async sendBufferedPart(signal: AbortSignal, last = false): Promise<void> {
    if (this.#part.used === 0 && !(last && this.#parts.length === 0)) return;
    while (this.#inFlight.length >= PARTS_IN_FLIGHT) await this.#inFlight.shift();
    if (this.#uploadId === undefined) await this.begin(signal);
    if (this.#parts.length + 1 > MAX_PARTS) {
      throw new ConnectorError(`${this.url}: the object needs more than ${MAX_PARTS} parts; raise part_size_mib or set max_records_per_object`, {
        code: 'TOO_MANY_PARTS',
        details: { bucket: this.bucket, key: this.key },
      });
    }
    const body = this.#part.take();
    // The next part fills the buffer of a finished upload, or a new one of full size; after the last part, none.
    this.#part = last ? new PartBuffer(Buffer.alloc(0)) : new PartBuffer(this.#spare.pop() ?? Buffer.allocUnsafe(this.partSize + PartBuffer.SLACK));
    const partNumber = this.#parts.length + 1;
    this.#parts.push({ PartNumber: partNumber, ETag: '' });
    const uploadId = this.#uploadId!;
    const { UploadPartCommand } = await import('@aws-sdk/client-s3');
    const partSignal = linkedSignal(signal, this.#partUploads.signal);
    const upload = s3Call(`uploading part ${partNumber} of`, this, { ...this.call, signal: partSignal.signal }, async (abortSignal) => {
      try {
        return await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: this.key, UploadId: uploadId, PartNumber: partNumber, Body: body }), { abortSignal });
      } catch (err) {
        if (!refusedByServer(err)) this.#partMayLand = true;
        throw err;
      }
    })
      .then((result) => {
        this.#parts[partNumber - 1]!.ETag = result.ETag!;
        if (body.buffer.byteLength >= this.partSize && body.byteOffset === 0) this.#spare.push(Buffer.from(body.buffer, 0, body.buffer.byteLength));
      })
      .finally(() => partSignal.release());
    // Keep no unhandled rejection: the failure is awaited at the next part or at seal.
    upload.catch(() => undefined);
    this.#inFlight.push(upload);
    if (last) await upload;
  }

  private async begin(signal: AbortSignal): Promise<void> {
    const { CreateMultipartUploadCommand } = await import('@aws-sdk/client-s3');
    const metadata = this.#metadata ?? this.earlyMetadata();
    let mayHaveStarted = false;
    const created = await s3Call('starting the upload of', this, { ...this.call, signal }, async (abortSignal) => {
      try {
        return await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, ...this.objectHeaders(metadata) }), { abortSignal });
      } catch (err) {
        if (!refusedByServer(err)) mayHaveStarted = true;
        throw err;
      }
    });
    this.#uploadId = created.UploadId!;
    if (mayHaveStarted) await this.abortStrayUploads(signal);
  }

  /**
   * An attempt to start the upload that failed without a refusal (its answer lost, a 5xx) may have
   * started one all the same, which nothing would ever complete or abort: its parts-to-be cost
   * nothing, but it stays listed until a lifecycle rule removes it. When the key holds this run's
   * id, any other upload pending at exactly this key is this run's, so it is aborted; otherwise it
   * cannot be told from another process's upload and is left, with a warning.
   */
  private async abortStrayUploads(signal: AbortSignal): Promise<void> {
    const runId = this.earlyMetadata()['run-id'];
    const where = { bucket: this.bucket, key: this.key };
    if (runId === undefined || !this.key.includes(runId)) {
      this.call.log.warn(where, 'an attempt to start this upload failed after the server may have started it; the key does not hold the run id, so such an upload cannot be told from another process\'s and is left pending: a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes it');
      return;
    }
    const { ListMultipartUploadsCommand } = await import('@aws-sdk/client-s3');
    try {
      const listed = await s3Call('listing the pending uploads of', this, { ...this.call, signal }, (abortSignal) =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.key }), { abortSignal }),
      );
      for (const upload of listed.Uploads ?? []) {
        if (upload.Key !== this.key || upload.UploadId === undefined || upload.UploadId === this.#uploadId) continue;
        await this.abortUpload(upload.UploadId, signal);
        this.call.log.info({ ...where, upload_id: upload.UploadId }, 'aborted an upload that an earlier attempt to start this one had started');
      }
    } catch (err) {
      if (signal.aborted) throw err;
      this.call.log.warn({ ...where, err: serializeError(err) }, 'an upload an earlier attempt may have started could not be looked for or aborted; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes it');
    }
  }
}

/**
 * Whether the server answered a request with a refusal (4xx), which stores nothing. A request
 * cut off, timed out or answered 5xx may have been stored all the same.
 */
function refusedByServer(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500;
}

/**
 * The bytes of one part, written in place. It starts small and doubles (an object of a few
 * records stays a few kilobytes), up to the part size plus room for one more piece of text, so a
 * piece never has to be split across parts.
 */
class PartBuffer {
  /** A text piece is at most 64 Ki UTF-16 units (src/encoding/ndjson.ts OUTPUT_PIECE): at most 192 KiB of UTF-8. */
  static readonly SLACK = 256 * 1024;
  #buffer: Buffer;
  #used = 0;

  constructor(buffer: Buffer = Buffer.allocUnsafe(64 * 1024)) {
    this.#buffer = buffer;
  }

  get used(): number {
    return this.#used;
  }

  /** Writes the text whole; returns the bytes written. */
  write(text: string, partSize: number): number {
    this.reserve(this.#used + text.length * 3, partSize + Math.max(PartBuffer.SLACK, text.length * 3));
    const written = this.#buffer.write(text, this.#used, 'utf8');
    this.#used += written;
    return written;
  }

  /** Copies as many of the bytes from `offset` as fit below the part size; returns how many. */
  copy(bytes: Uint8Array, offset: number, partSize: number): number {
    const count = Math.min(bytes.length - offset, Math.max(partSize - this.#used, 0));
    this.reserve(this.#used + count, partSize + PartBuffer.SLACK);
    this.#buffer.set(bytes.subarray(offset, offset + count), this.#used);
    this.#used += count;
    return count;
  }

  /** The part's bytes; the buffer is handed over with them. */
  take(): Buffer {
    return this.#buffer.subarray(0, this.#used);
  }

  private reserve(needed: number, limit: number): void {
    if (needed <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(this.#buffer.length * 2, limit)));
    this.#buffer.copy(grown, 0, 0, this.#used);
    this.#buffer = grown;
  }
}
