/**
 * A real S3-protocol server for the tests: s3rver (Koa, files in a temp folder) on 127.0.0.1
 * and an ephemeral port, reached through the real @aws-sdk/client-s3.
 *
 * s3rver 3.7 does not implement three calls the S3 target relies on: AbortMultipartUpload
 * (`DELETE /bucket/key?uploadId=`) answers 405, ListMultipartUploads (`GET /bucket?uploads`)
 * answers NotImplemented, and ListParts (`GET /bucket/key?uploadId=`) is taken for a GetObject.
 * They are added here, over s3rver's own on-disk store (an upload is a
 * folder of parts under `<bucket>/._S3rver_uploads/<id>`), so an abort really removes the parts
 * and a listing shows what is really pending. `failNext` makes the server answer the next
 * matching requests with an S3 error (500 InternalError, 503 SlowDown...), as a troubled S3 would,
 * or with a status and no body (`body: false`), as S3 answers a HEAD.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { S3Client, CreateBucketCommand, ListObjectsV2Command, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { makeTempDir } from '../helpers.js';

/** Credentials s3rver accepts out of the box. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface Fault {
  /** HTTP method and a test on the path+query, e.g. PUT and /partNumber=/. Default: every request. */
  readonly method?: string;
  readonly url?: RegExp;
  readonly status: number;
  readonly code: string;
  readonly message?: string;
  /** How many matching requests fail; default 1. */
  times?: number;
  /** false: the answer has no body, so no S3 code (as S3 answers a HEAD, and some proxies any request). */
  readonly body?: false;
}

export interface ReceivedRequest {
  readonly method: string;
  /** Path and query. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface TestS3Server {
  readonly endpoint: string;
  readonly port: number;
  readonly directory: string;
  /** A client as a user's tooling would have: path style, the s3rver credentials. */
  readonly client: S3Client;
  /** Every request the server received, in order. */
  readonly requests: ReceivedRequest[];
  failNext(fault: Fault): void;
  /**
   * The next UploadPart matching `url` is received whole and never answered; its part is stored
   * only once its upload has been aborted, as a server may store a part whose request the client
   * cut off (S3 documents that an abort may then have to be repeated). Resolves when the part's
   * bytes have all arrived.
   */
  holdPartUntilAborted(url: RegExp): Promise<void>;
  /** The next request matching `method` and `url` is served only after `ms` (a slow server); resolves when it arrives. */
  delayNext(method: string, url: RegExp, ms: number): Promise<void>;
  /**
   * The ETag a completed multipart upload gets: s3rver's MD5 of the whole body ('md5', the
   * default), S3's MD5 of the parts' MD5s with "-" and their count ('s3'), or an S3-style ETag of
   * other parts ('other': the key holds another multipart object than the one just completed).
   */
  multipartEtags(style: 'md5' | 's3' | 'other'): void;
  /** Forgets the faults and held parts not yet used, and goes back to s3rver's own ETags. */
  clearFaults(): void;
  createBucket(name: string): Promise<void>;
  /** Keys of the bucket (under a prefix), sorted. */
  keys(bucket: string, prefix?: string): Promise<string[]>;
  object(bucket: string, key: string): Promise<{ body: Buffer; contentType: string | undefined; contentEncoding: string | undefined; metadata: Record<string, string> }>;
  /** Multipart uploads begun and neither completed nor aborted, read from the server's store. */
  pendingUploads(bucket: string): { key: string; uploadId: string; parts: number }[];
  stop(): Promise<void>;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  req: import('node:http').IncomingMessage;
  res: import('node:http').ServerResponse;
  respond?: boolean;
  status: number;
  body: unknown;
  set(name: string, value: string): void;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

export async function startS3Server(): Promise<TestS3Server> {
  // As the S3 target does: no Node-version notice from the SDK in the test output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { dir, cleanup } = makeTempDir('tp-s3rver-');
  const faults: Fault[] = [];
  const requests: ReceivedRequest[] = [];
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true }) as unknown as S3rver & {
    middleware: Middleware[];
    store: { getResourcePath(bucket: string, key: string, resource: string): string };
  };
  let etagStyle: 'md5' | 's3' | 'other' = 'md5';
  const uploadsDir = (bucket: string) => path.join(dir, bucket, '._S3rver_uploads');
  const holds: { url: RegExp; received: () => void }[] = [];
  const delays: { method: string; url: RegExp; ms: number; arrived: () => void }[] = [];
  /** Parts held back, by upload folder, stored when their upload is aborted. */
  const lateParts = new Map<string, { partNumber: string; bytes: Buffer }[]>();

  const extra: Middleware = async (ctx, next) => {
    requests.push({ method: ctx.method, url: ctx.url, headers: { ...ctx.headers } });
    const fault = faults.find((f) => (!f.method || f.method === ctx.method) && (!f.url || f.url.test(ctx.url)));
    if (fault) {
      if (--fault.times! <= 0) faults.splice(faults.indexOf(fault), 1);
      // Read the body first, as S3 does, so the client sees the error rather than a reset connection.
      if (!ctx.req.complete) await new Promise((resolve) => ctx.req.on('end', resolve).on('error', resolve).resume());
      if (fault.body === false) {
        ctx.respond = false;
        ctx.res.writeHead(fault.status, { 'Content-Length': '0' }).end();
        return;
      }
      ctx.status = fault.status;
      ctx.set('Content-Type', 'application/xml');
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>${fault.message ?? fault.code}</Message><RequestId>test</RequestId></Error>`;
      return;
    }
    const delay = delays.find((d) => d.method === ctx.method && d.url.test(ctx.url));
    if (delay) {
      delays.splice(delays.indexOf(delay), 1);
      delay.arrived();
      await new Promise((resolve) => setTimeout(resolve, delay.ms));
    }
    const [, bucket, ...keyParts] = ctx.path.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    const hold = ctx.method === 'PUT' && ctx.query.partNumber !== undefined ? holds.find((h) => h.url.test(ctx.url)) : undefined;
    if (hold && bucket) {
      holds.splice(holds.indexOf(hold), 1);
      const chunks: Buffer[] = [];
      await new Promise((resolve) => ctx.req.on('data', (c: Buffer) => chunks.push(c)).on('end', resolve).on('error', resolve));
      const upload = path.join(uploadsDir(bucket), path.basename(ctx.query.uploadId!));
      lateParts.set(upload, [...(lateParts.get(upload) ?? []), { partNumber: ctx.query.partNumber!, bytes: Buffer.concat(chunks) }]);
      hold.received();
      ctx.respond = false;
      return;
    }
    if (bucket && key && ctx.query.uploadId !== undefined && (ctx.method === 'DELETE' || ctx.method === 'GET')) {
      // AbortMultipartUpload and ListParts: NoSuchUpload once the upload is completed or aborted.
      const upload = path.join(uploadsDir(bucket), path.basename(ctx.query.uploadId));
      if (!existsSync(upload)) {
        ctx.status = 404;
        ctx.body = { Error: { Code: 'NoSuchUpload', Message: 'The specified upload does not exist.' } };
      } else if (ctx.method === 'DELETE') {
        rmSync(upload, { recursive: true, force: true });
        // A held part lands now, after the abort: the upload is back, holding that part.
        for (const late of lateParts.get(upload) ?? []) {
          mkdirSync(upload, { recursive: true });
          writeFileSync(path.join(upload, late.partNumber), late.bytes);
        }
        lateParts.delete(upload);
        ctx.status = 204;
        ctx.body = '';
      } else {
        const numbers = readdirSync(upload).filter((f) => /^\d+$/.test(f)).map(Number).sort((a, b) => a - b);
        ctx.body = { ListPartsResult: { Bucket: bucket, Key: key, UploadId: ctx.query.uploadId, Part: numbers.map((n) => ({ PartNumber: n })) } };
      }
      return;
    }
    if (ctx.method === 'POST' && bucket && key && ctx.query.uploadId !== undefined && etagStyle !== 'md5') {
      // CompleteMultipartUpload, then the object's ETag made as S3 makes it: read the parts' MD5s
      // before s3rver removes them, and write the ETag where s3rver keeps the object's.
      const upload = path.join(uploadsDir(bucket), path.basename(ctx.query.uploadId));
      const partMd5s = existsSync(upload)
        ? readdirSync(upload)
            .filter((f) => /^\d+\.md5$/.test(f))
            .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
            .map((f) => Buffer.from(readFileSync(path.join(upload, f), 'utf8'), 'hex'))
        : [];
      await next();
      if (ctx.status === 200 && partMd5s.length > 0) {
        if (etagStyle === 'other') partMd5s.reverse().push(Buffer.alloc(16));
        const etag = `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${partMd5s.length}`;
        writeFileSync(server.store.getResourcePath(bucket, key, 'object.md5'), etag);
      }
      return;
    }
    if (ctx.method === 'GET' && bucket && !key && ctx.query.uploads !== undefined) {
      ctx.body = {
        ListMultipartUploadsResult: {
          Bucket: bucket,
          IsTruncated: false,
          Upload: pending(bucket).map((u) => ({ Key: u.key, UploadId: u.uploadId })),
        },
      };
      return;
    }
    await next();
  };
  // After s3rver's logger and XML encoder, before its router.
  server.middleware.splice(2, 0, extra);

  const pending = (bucket: string) => {
    const root = uploadsDir(bucket);
    if (!existsSync(root)) return [];
    // An upload being created may not have its files yet: it is pending all the same.
    const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '(being created)');
    const list = (folder: string) => (existsSync(folder) ? readdirSync(folder) : []);
    return list(root).map((uploadId) => ({
      uploadId,
      key: read(path.join(root, uploadId, 'key')),
      parts: list(path.join(root, uploadId)).filter((f) => /^\d+$/.test(f)).length,
    }));
  };

  const address = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  return {
    endpoint,
    port: address.port,
    directory: dir,
    client,
    requests,
    failNext(fault) {
      faults.push({ times: 1, ...fault });
    },
    multipartEtags(style) {
      etagStyle = style;
    },
    delayNext(method, url, ms) {
      return new Promise<void>((arrived) => delays.push({ method, url, ms, arrived }));
    },
    holdPartUntilAborted(url) {
      return new Promise<void>((received) => holds.push({ url, received }));
    },
    clearFaults() {
      faults.length = 0;
      holds.length = 0;
      delays.length = 0;
      lateParts.clear();
      etagStyle = 'md5';
    },
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async keys(bucket, prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) keys.push(o.Key!);
        token = page.NextContinuationToken;
      } while (token);
      return keys.sort();
    },
    async object(bucket, key) {
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        body: Buffer.from(await got.Body!.transformToByteArray()),
        contentType: head.ContentType,
        contentEncoding: head.ContentEncoding,
        metadata: head.Metadata ?? {},
      };
    },
    pendingUploads: pending,
    async stop() {
      client.destroy();
      await server.close();
      cleanup();
    },
  };
}
