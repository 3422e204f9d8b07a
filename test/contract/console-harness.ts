import { PassThrough } from 'node:stream';
import { ConsoleSink } from '../../connectors/console/console-sink.js';
import { parseNdjson } from '../helpers.js';
import type { HarnessSinkOptions, TargetHarness } from './harness.js';

/** The console target, NDJSON, writing to a stream the harness reads: the peer is what was written to it. */
export function consoleHarness(): TargetHarness {
  let text = '';
  let out = new PassThrough();
  const create = (options: HarnessSinkOptions, stream: PassThrough) =>
    new ConsoleSink(
      { type: 'console', format: 'ndjson', include_metadata: options.includeMetadata },
      { name: 'contract-console', configDir: '.', log: options.log, signal: new AbortController().signal },
      stream,
    );
  const written = async () => {
    // What the sink wrote has passed through once the stream has been read on this tick.
    await new Promise((resolve) => setImmediate(resolve));
    return parseNdjson(text);
  };
  return {
    name: 'console',
    delivery: 'per-write',
    async setup() {
      text = '';
      out = new PassThrough();
      out.setEncoding('utf8');
      out.on('data', (chunk: string) => (text += chunk));
    },
    async create(options) {
      return create(options, out);
    },
    async createFailing(options) {
      const closed = new PassThrough();
      closed.destroy();
      return { sink: create(options, closed), names: 'standard output' };
    },
    received: written,
    visibleBeforeFlush: written,
    async traces() {
      await new Promise((resolve) => setImmediate(resolve));
      return text.length > 0 ? [`${text.length} characters written`] : [];
    },
    async cleanup() {
      out.destroy();
    },
  };
}
