import type { Writable } from 'node:stream';
import type { CreateContext, MatchBatch, Sink, SinkSpec } from '../types.js';
import { exportRecords, toNdjsonPieces } from '../../src/records/export-record.js';

export interface ConsoleSinkConfig {
  type: 'console';
  format?: 'auto' | 'pretty' | 'ndjson';
  include_metadata?: boolean;
}

export const consoleSink: SinkSpec<ConsoleSinkConfig> = {
  kind: 'target',
  type: 'console',
  summary: 'Prints matches on standard output: readable lines on a terminal, NDJSON when piped.',
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

export class ConsoleSink implements Sink {
  readonly #pretty: boolean;

  constructor(
    private readonly config: ConsoleSinkConfig,
    _ctx: CreateContext,
    private readonly out: Writable & { isTTY?: boolean },
  ) {
    const format = config.format ?? 'auto';
    this.#pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  }

  async write(batch: MatchBatch): Promise<void> {
    if (batch.rows.length === 0) return;
    const includeMetadata = this.config.include_metadata !== false;
    const pieces = this.#pretty ? [prettyLines(batch, includeMetadata)] : toNdjsonPieces(batch, includeMetadata);
    for (const text of pieces) {
      if (!this.out.write(text)) await new Promise((resolve) => this.out.once('drain', resolve));
    }
  }

  async flush(): Promise<void> {}
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
