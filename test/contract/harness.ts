/**
 * A target harness: what the contract suite (target-contract.test.ts) needs to know about one
 * export target to hold it to the delivery contract of connectors/types.ts. A new connector
 * joins the suite by adding one harness object to `TARGETS` in targets.ts.
 *
 * The harness creates the REAL sink against a REAL peer (a folder, a stream, a PostgreSQL table,
 * a bucket, a Redis key space, an HTTP server) and reads back what the peer really holds, the
 * way a consumer of that peer would. It never asks the sink what it did.
 *
 *   name                 shown in the test titles
 *   delivery             what the target declares ('atomic' | 'per-write'); the suite checks the sink agrees
 *   secret?              a value the harness planted in the target's config (a password, a token);
 *                        no error message and no log line may ever contain it
 *   setup()              before each test: a fresh, empty peer (temp folder, new stream, TRUNCATE, FLUSHDB)
 *   create(options)      a real sink on that peer; `includeMetadata` is the target's include_metadata
 *   createFailing(opts)  a real sink configured so that check() and writes must fail (file: a path
 *                        under a regular file; PostgreSQL: a wrong password); `names` is a string
 *                        the error must mention so a person can tell what is wrong (the path, the host)
 *   received()           every record the peer holds for good, as plain objects, parsed from the peer
 *                        (files on disk, the bytes on the stream, SELECT * ...), in any order
 *   visibleBeforeFlush() what another reader of the peer sees right now, mid-cycle (for most targets
 *                        the same read as received(); PostgreSQL: a second connection, outside the
 *                        sink's transaction)
 *   traces()             anything at all the target left on the peer, records or not (temp files,
 *                        partial uploads, bytes written), one short description each: [] = no trace
 *   cleanup()            after each test: remove what setup made
 */
import type { Logger } from 'pino';
import type { DeliveryGuarantee, Sink } from '../../connectors/types.js';

export type PlainRecord = Record<string, unknown>;

export interface HarnessSinkOptions {
  /** The target's include_metadata key. */
  readonly includeMetadata: boolean;
  /** The CreateContext's log, so the suite can read what the target logged. */
  readonly log: Logger;
}

export interface TargetHarness {
  readonly name: string;
  readonly delivery: DeliveryGuarantee;
  readonly secret?: string;
  setup(): Promise<void>;
  create(options: HarnessSinkOptions): Promise<Sink>;
  createFailing(options: HarnessSinkOptions): Promise<{ sink: Sink; names: string }>;
  received(): Promise<PlainRecord[]>;
  visibleBeforeFlush(): Promise<PlainRecord[]>;
  traces(): Promise<string[]>;
  cleanup(): Promise<void>;
}
