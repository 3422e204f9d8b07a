import type { Sink } from '../../connectors/types.js';
import { restSink } from '../../connectors/rest/rest-sink.js';
import { closedPort, startRestServer, type RestServer } from '../support/rest-server.js';
import type { HarnessSinkOptions, TargetHarness } from './harness.js';

const TOKEN = 'contract-rest-token-5e6f7a8b';

/** The REST target posting to a real HTTP server on 127.0.0.1; the peer is what that server received. */
export function restHarness(): TargetHarness {
  let server: RestServer | undefined;
  const sinks: Sink[] = [];
  const create = async (options: HarnessSinkOptions, url: string) => {
    const sink = await restSink.create(
      { type: 'rest_api', url, headers: { Authorization: `Bearer ${TOKEN}` }, include_metadata: options.includeMetadata, timeout: 5 },
      { name: 'contract-rest', configDir: '.', log: options.log, signal: new AbortController().signal },
    );
    sinks.push(sink);
    return sink;
  };
  const received = async () => server!.receivedRecords();
  return {
    name: 'rest_api',
    delivery: 'per-write',
    secret: TOKEN,
    async setup() {
      server = await startRestServer();
    },
    create: (options) => create(options, `${server!.base}/ingest`),
    async createFailing(options) {
      const port = await closedPort();
      return { sink: await create(options, `http://127.0.0.1:${port}/ingest`), names: `127.0.0.1:${port}` };
    },
    received,
    visibleBeforeFlush: received,
    async traces() {
      return server!.requests.map((r) => `${r.method} ${r.url} (${r.body.length} bytes)`);
    },
    async cleanup() {
      await Promise.all(sinks.splice(0).map((s) => s.close?.()));
      await server?.stop();
      server = undefined;
    },
  };
}
