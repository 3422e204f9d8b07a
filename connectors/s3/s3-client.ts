/**
 * The S3 client of the target, and the one way its requests are sent: with the target's retry
 * policy (src/delivery/retry.ts), a bound on every wait, and failures turned into ConnectorErrors
 * that name the bucket, the key and the S3 error code.
 */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { NodeHttpHandlerOptions } from '@smithy/node-http-handler';
import type { Logger } from 'pino';
import { withRetry } from '../../src/delivery/retry.js';
import type { RetryPolicy } from '../../src/delivery/policy.js';
import { CancelledError, ConnectorError, isRetryable, type ErrorDetails } from '../../src/errors.js';
import { parseDuration } from '../../src/rules/duration.js';

export type ChecksumSetting = 'when_supported' | 'when_required';

export interface S3ClientSettings {
  readonly region?: string;
  readonly endpoint?: string;
  readonly force_path_style?: boolean;
  readonly access_key_id?: string;
  readonly secret_access_key?: string;
  readonly session_token?: string;
  readonly request_checksum_calculation?: ChecksumSetting;
  readonly response_checksum_validation?: ChecksumSetting;
  readonly connect_timeout?: string;
  readonly idle_timeout?: string;
}

/**
 * How long to wait for a TCP connection, and how long a request may go without a byte moving
 * either way (a server that accepts and never answers, or stops reading a part half-way).
 */
export const DEFAULT_CONNECT_TIMEOUT = '10s';
export const DEFAULT_IDLE_TIMEOUT = '2m';

/**
 * Custom endpoints (MinIO, Ceph, R2, Garage, s3rver) get checksums only where the API requires
 * them: recent SDKs otherwise add CRC32 checksums to every upload, as aws-chunked trailers for
 * streamed bodies, which many S3-compatible servers refuse. AWS itself keeps the SDK's default.
 */
export function checksumDefault(settings: S3ClientSettings): ChecksumSetting {
  return settings.endpoint ? 'when_required' : 'when_supported';
}

export async function createS3Client(settings: S3ClientSettings): Promise<S3Client> {
  // The SDK warns on stderr that its 2027 releases will need Node 22; the project supports Node 20,
  // and that plain-text line would break JSON logs. A user who set the variable keeps their value.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client } = await import('@aws-sdk/client-s3');
  const checksumRequest = settings.request_checksum_calculation ?? checksumDefault(settings);
  const checksumResponse = settings.response_checksum_validation ?? checksumDefault(settings);
  const config: S3ClientConfig = {
    region: settings.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    followRegionRedirects: true,
    forcePathStyle: settings.force_path_style ?? false,
    requestChecksumCalculation: checksumRequest === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    responseChecksumValidation: checksumResponse === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    // Requests are retried by the target's own retry policy (retry.*), with its backoff and logs.
    maxAttempts: 1,
    requestHandler: {
      connectionTimeout: parseDuration(settings.connect_timeout ?? DEFAULT_CONNECT_TIMEOUT)!,
      // An inactivity bound, not a total one: a large part on a slow link may take long while bytes move.
      // (The handler's requestTimeout bounds the whole request and, by default, only logs a warning when it passes.)
      socketTimeout: parseDuration(settings.idle_timeout ?? DEFAULT_IDLE_TIMEOUT)!,
    } as NodeHttpHandlerOptions,
  };
  if (settings.endpoint) config.endpoint = settings.endpoint;
  // Credentials in the config are optional: otherwise the SDK's default chain (environment, profile, SSO, instance role).
  if (settings.access_key_id && settings.secret_access_key) {
    config.credentials = {
      accessKeyId: settings.access_key_id,
      secretAccessKey: settings.secret_access_key,
      ...(settings.session_token ? { sessionToken: settings.session_token } : {}),
    };
  }
  return new S3Client(config);
}

/** Where a request goes, for messages. */
export interface S3Place {
  readonly bucket: string;
  readonly key?: string;
}

export interface S3CallOptions {
  readonly retry: RetryPolicy;
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** Sends one request, retried as the policy says; `what` is a gerund phrase ("uploading part 3 of"). */
export async function s3Call<T>(what: string, place: S3Place, options: S3CallOptions, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const description = `${what} ${s3Url(place)}`;
  return withRetry(
    async () => {
      try {
        return await send(options.signal);
      } catch (err) {
        throw s3Error(description, place, err, options.signal);
      }
    },
    { policy: options.retry, signal: options.signal, log: options.log, what: description },
  );
}

export function s3Url(place: S3Place): string {
  return `s3://${place.bucket}/${place.key ?? ''}`;
}

/** What an S3 error code means for the user, when it is one a config can fix. */
const HINTS: Readonly<Record<string, string>> = {
  NoSuchBucket: 'create the bucket, or fix the target\'s "bucket"',
  // Named by the status alone (STATUS_CODES): a HEAD request (the check's HeadBucket) has no body.
  NotFound: 'no such bucket: create it, or fix the target\'s "bucket"',
  Forbidden:
    'the credentials were refused or lack permission for this bucket (s3:ListBucket to check it, s3:PutObject and the multipart calls to upload to it); ' +
    'check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the profile), the region and the endpoint, and the IAM and bucket policies',
  AccessDenied: 'the credentials are not allowed to write there; check the IAM policy for s3:PutObject and the multipart calls',
  InvalidAccessKeyId: 'the access key is unknown to the server; check AWS_ACCESS_KEY_ID (or the profile in use)',
  SignatureDoesNotMatch: 'the secret key does not match the access key; check AWS_SECRET_ACCESS_KEY',
  ExpiredToken: 'the session token has expired; refresh the credentials',
  PermanentRedirect: 'the bucket is in another region; set "region"',
  AuthorizationHeaderMalformed: 'the region does not match the bucket; set "region"',
  CredentialsProviderError: 'no credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE',
  XAmzContentSHA256Mismatch: 'the server does not accept the checksums sent; set request_checksum_calculation: when_required',
  InvalidArgument: 'if the server refuses checksum headers, set request_checksum_calculation: when_required',
};

/**
 * An error answer without a body names no S3 code: S3 answers a HEAD so, and proxies may answer
 * anything so. The SDK then calls a 404 NotFound and anything else "Unknown"; these statuses are
 * named by their HTTP reason instead, so the user gets a code and a hint.
 */
const STATUS_CODES: Readonly<Record<number, string>> = { 403: 'Forbidden', 404: 'NotFound' };

const RETRYABLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeoutException', 'InternalError', 'ServiceUnavailable', 'TimeoutError']);

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number; requestId?: string };
  Code?: string;
}

/** The reason of an AbortSignal.timeout(): a deadline passed, nobody cancelled. */
function isDeadline(reason: unknown): boolean {
  return reason instanceof Error && reason.name === 'TimeoutError';
}

/** A failed request as a ConnectorError: the S3 code, the HTTP status, the bucket and key, retryable or not. */
export function s3Error(description: string, place: S3Place, err: unknown, signal?: AbortSignal): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const e = (err ?? {}) as SdkError;
  if (signal?.aborted && isDeadline(signal.reason)) {
    return new ConnectorError(`${description}: not finished before its deadline`, { code: 'TIMEOUT', details: { bucket: place.bucket, ...(place.key !== undefined ? { key: place.key } : {}) }, cause: err });
  }
  if (signal?.aborted || e.name === 'AbortError') return new CancelledError(description, err);
  const status = e.$metadata?.httpStatusCode;
  const named = e.Code ?? e.name;
  const unnamed = status !== undefined && (named === undefined || named === 'Unknown') && STATUS_CODES[status] !== undefined;
  const serverCode = status === undefined ? undefined : unnamed ? STATUS_CODES[status] : named;
  const code = serverCode ?? e.code ?? e.name ?? 'ERROR';
  const retryable =
    (status !== undefined && (status >= 500 || status === 429 || status === 408)) || RETRYABLE_CODES.has(code) || isRetryable(err);
  const details: ErrorDetails = {
    bucket: place.bucket,
    ...(place.key !== undefined ? { key: place.key } : {}),
    ...(status !== undefined ? { status } : {}),
    ...(serverCode !== undefined ? { s3_code: serverCode } : {}),
    ...(e.$metadata?.requestId ? { request_id: e.$metadata.requestId } : {}),
  };
  const hint = HINTS[code];
  const said = status !== undefined ? `${code} (HTTP ${status})` : code;
  const message = `${description}: ${said}${hint ? `; ${hint}` : ''}`;
  // The SDK's own message for an answer without a body ("UnknownError", even when it names the
  // error NotFound from the status) would only confuse.
  const vague = unnamed || e.message === undefined || /^Unknown(Error)?$/.test(e.message);
  return new ConnectorError(message, { code, retryable, details, ...(vague ? {} : { cause: err }) });
}
