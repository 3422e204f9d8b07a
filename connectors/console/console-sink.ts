import type { Writable } from 'node:stream';
import type { CreateContext, MatchBatch, OperationContext, Sink, SinkSpec } from '../types.js';
import { exportRecords } from '../../src/records/export-record.js';
import { toNdjsonPieces } from '../../src/encoding/ndjson.js';
import { CancelledError } from '../../src/errors.js';

export interface ConsoleSinkConfig {
  type: 'console';
  format?: 'auto' | 'pretty' | 'ndjson';
  include_metadata?: boolean;
}

export const consoleSink: SinkSpec<ConsoleSinkConfig> = {
  kind: 'target',
  type: 'console',
  summary: 'Prints matches on standard output: readable lines on a terminal, NDJSON when piped.',
  batching: { batch_size: 2000, batch_bytes: 4 * 1024 * 1024, linger: '0s', max_in_flight: 1 },
  configSchema: {
    type: 'object',
    properties: {
      format: {
        type: 'string',
        enum: ['auto', 'pretty', 'ndjson'],
        default: 'auto',
        description: 'auto: pretty on a terminal, NDJSON otherwise (so `| jq` works).',
      },
    },
  },
  async create(config, ctx) {
    return new ConsoleSink(config, ctx, process.stdout);
  },
};

/** Per-write: a line printed cannot be taken back, so each write counts as delivered when it returns. */
export class ConsoleSink implements Sink {
  readonly delivery = 'per-write' as const;
  readonly #pretty: boolean;

  constructor(
    private readonly config: ConsoleSinkConfig,
    _ctx: CreateContext,
    private readonly out: Writable & { isTTY?: boolean },
  ) {
    const format = config.format ?? 'auto';
    this.#pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  }

  async write(batch: MatchBatch, ctx: OperationContext): Promise<void> {
    if (batch.rows.length === 0) return;
    const includeMetadata = this.config.include_metadata !== false;
    const pieces = this.#pretty ? [prettyLines(batch, includeMetadata)] : toNdjsonPieces(batch, includeMetadata);
    for (const text of pieces) {
      if (!this.out.write(text)) await drained(this.out, ctx.signal);
    }
  }

  async flush(): Promise<void> {}

  async check(): Promise<string> {
    if (this.out.destroyed || this.out.writableEnded) throw new Error('standard output is closed');
    return this.#pretty ? 'terminal, readable lines' : 'NDJSON on standard output';
  }
}

const useColor = !process.env.NO_COLOR;
const bold = (s: string) => (useColor ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s: string) => (useColor ? `\x1b[2m${s}\x1b[22m` : s);

/** `rule  datasource  field=value ...`, one line a record, values as JSON only where plain text would mislead. */
function prettyLines(batch: MatchBatch, includeMetadata: boolean): string {
  const time = batch.matchedAt.slice(11, 19);
  const head = includeMetadata ? `${dim(time)} ${bold(batch.rule)} ${dim(`[${batch.datasource}]`)} ` : '';
  return exportRecords(batch, false)
    .map((record) => {
      const fields = Object.entries(record)
        .map(([k, v]) => `${k}=${typeof v === 'string' && !/[\s"=]/.test(v) && v !== '' ? v : JSON.stringify(v)}`)
        .join(' ');
      return head + fields + '\n';
    })
    .join('');
}

/** Waits for a full pipe to drain; a reader that never reads (a stopped pager) must not hold a cancelled run. */
function drained(out: Writable, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      out.off('drain', onDrain).off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onDrain = () => (done(), resolve());
    const onClose = () => (done(), reject(new Error('standard output was closed')));
    const onAbort = () => (done(), reject(new CancelledError('writing to standard output')));
    if (signal.aborted) return onAbort();
    out.on('drain', onDrain).on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
