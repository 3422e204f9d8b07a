// REST connector bench: the export target sending batches of 500 records, and the datasource
// reading 1,000 pages of 1,000 records, each against the same local server fed by a bare undici
// loop (the floor), in the same run. The server runs in a child process, so its work does not
// share the bench's event loop; it counts the records it received, which must equal what was sent.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const name = 'rest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const RECORDS = Number(process.env.BENCH_REST_RECORDS ?? 200_000);
const BATCH = 500;
const IN_FLIGHT = 4;
const PAGES = Number(process.env.BENCH_REST_PAGES ?? 1000);
const PAGE_SIZE = 1000;
const ROUNDS = Number(process.env.BENCH_REST_ROUNDS ?? 2);

/** The receiving and paginated server, as a child process: POST counts records, GET /pages?page=N serves one page. */
const SERVER = `
import { createServer } from 'node:http';
let received = 0;
const item = (i) => ({ id: i, sensor: 'sensor-' + (i % 100), value: (i * 7919) % 100000 / 100, status: i % 3 ? 'active' : 'error', created_at: '2026-11-24T14:22:02.705Z' });
const page = JSON.stringify({ data: Array.from({ length: ${PAGE_SIZE} }, (_, i) => item(i)) });
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/count')) return res.end(String(received));
  if (req.method === 'GET' && req.url.startsWith('/reset')) { received = 0; return res.end('0'); }
  if (req.method === 'GET') {
    const n = Number(new URL(req.url, 'http://x').searchParams.get('page'));
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(n > ${PAGES} ? '{"data":[]}' : page);
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    received += Array.isArray(body) ? body.length : 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
`;

async function startServer() {
  const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
  });
  return { base: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

function rows(count, from = 0) {
  const out = [];
  for (let i = from; i < from + count; i++) out.push([String(i), `sensor-${i % 100}`, String(((i * 7919) % 100000) / 100), i % 3 ? 'active' : 'error', '2026-11-24T14:22:02.705Z']);
  return out;
}

async function counted(base) {
  const { request } = await import('undici');
  return Number(await (await request(`${base}/count`)).body.text());
}

async function reset(base) {
  const { request } = await import('undici');
  await (await request(`${base}/reset`)).body.text();
}

/**
 * The floor: the same rows turned into the same JSON the target sends (typed values and the four
 * metadata fields), in arrays of 500 POSTed with undici by IN_FLIGHT workers. What the target
 * adds on top is its own cost: the queue, the content hash of the Idempotency-Key, the HTTP client.
 */
async function floorSend(base) {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
  const all = rows(RECORDS);
  const meta = { _rule: 'hot', _datasource: 'sensors', _run_id: 'bench', _matched_at: new Date().toISOString() };
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < all.length) {
      const slice = all.slice(next, (next += BATCH));
      const body = JSON.stringify(
        slice.map((r) => ({ id: r[0], sensor: r[1], value: Number(r[2]), status: r[3], created_at: new Date(r[4]).toISOString(), ...meta })),
      );
      const res = await request(`${base}/hook`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const seconds = (performance.now() - started) / 1000;
  await dispatcher.close();
  return RECORDS / seconds;
}

/** The REST target as the cycle drives it: the shared queue, batch_size 500, max_in_flight 4, with metadata and Idempotency-Key. */
async function targetSend(base) {
  const { restSink } = await import(`${root}dist/connectors/rest/rest-sink.js`);
  const { TargetQueue } = await import(`${root}dist/src/delivery/target-queue.js`);
  const { ColumnLayout } = await import(`${root}dist/src/records/layout.js`);
  const { pino } = await import('pino');
  const log = pino({ level: 'silent' });
  const layout = new ColumnLayout(['id', 'sensor', 'value', 'status', 'created_at'], { value: 'number', created_at: 'timestamp' });
  const sink = await restSink.create({ type: 'rest_api', url: `${base}/hook`, batch_size: BATCH }, { name: 'bench', configDir: '.', log, signal: new AbortController().signal });
  const counts = { exported: 0, failed: 0 };
  const queue = new TargetQueue(
    'bench',
    sink,
    { batchSize: BATCH, batchBytes: 64 * 1024 * 1024, lingerMs: 0, maxInFlight: IN_FLIGHT, retry: { maxAttempts: 1, initialBackoffMs: 1, maxBackoffMs: 1 } },
    { signal: new AbortController().signal, log },
    { exported: (_r, n) => (counts.exported += n), failed: (_r, n) => (counts.failed += n) },
  );
  const all = rows(RECORDS);
  const started = performance.now();
  for (let at = 0; at < all.length; at += 2000) {
    await queue.add({ rule: 'hot', datasource: 'sensors', runId: 'bench', matchedAt: new Date().toISOString(), layout, rows: all.slice(at, at + 2000) });
  }
  await queue.finish();
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  if (counts.exported !== RECORDS || counts.failed !== 0) throw new Error(`target counted ${JSON.stringify(counts)}, expected ${RECORDS} exported`);
  return RECORDS / seconds;
}

/** Peak RSS above the start, sampled while `work` runs. */
async function peakRss(work) {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const result = await work();
    return { result, growth: Math.max(0, peak - before) };
  } finally {
    clearInterval(timer);
  }
}

/** The floor for reading: every page fetched with undici and parsed, nothing kept. */
async function floorRead(base) {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
  let records = 0;
  const started = performance.now();
  for (let page = 1; ; page++) {
    const res = await request(`${base}/pages?page=${page}&per_page=${PAGE_SIZE}`, { dispatcher });
    const items = JSON.parse(await res.body.text()).data;
    if (items.length === 0) break;
    records += items.length;
  }
  const seconds = (performance.now() - started) / 1000;
  await dispatcher.close();
  return records / seconds;
}

async function sourceRead(base) {
  const { restSource } = await import(`${root}dist/connectors/rest/rest-source.js`);
  const { pino } = await import('pino');
  const log = pino({ level: 'silent' });
  const source = await restSource.create(
    { type: 'rest_api', url: `${base}/pages`, records_path: 'data', pagination: { type: 'page', size: PAGE_SIZE, max_pages: PAGES + 1 } },
    { name: 'bench', configDir: '.', log, signal: new AbortController().signal },
  );
  let records = 0;
  const started = performance.now();
  for await (const batch of source.read({ signal: new AbortController().signal, log, batchSize: 2000 })) records += batch.rows.length;
  const seconds = (performance.now() - started) / 1000;
  await source.close();
  if (records !== PAGES * PAGE_SIZE) throw new Error(`source read ${records} records, expected ${PAGES * PAGE_SIZE}`);
  return records / seconds;
}

export async function run({ progress }) {
  const server = await startServer();
  try {
    // Floor and connector alternate, ROUNDS times each, and the best of each counts: the first round also warms up the JIT.
    let floor = 0;
    let target = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      progress(`rest: round ${round}: floor, bare undici POSTing ${RECORDS} records in batches of ${BATCH}, ${IN_FLIGHT} at once`);
      await reset(server.base);
      floor = Math.max(floor, await floorSend(server.base));
      if ((await counted(server.base)) !== RECORDS) throw new Error('the server did not receive every record of the floor');
      await reset(server.base);
      progress(`rest: round ${round}: the REST target through the shared queue`);
      target = Math.max(target, await targetSend(server.base));
      const received = await counted(server.base);
      if (received !== RECORDS) throw new Error(`the server received ${received} records from the target, expected ${RECORDS}`);
    }

    let readFloor = 0;
    let read = 0;
    let growth = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      progress(`rest: round ${round}: floor, bare undici reading ${PAGES} pages of ${PAGE_SIZE}`);
      readFloor = Math.max(readFloor, await floorRead(server.base));
      progress(`rest: round ${round}: the REST datasource, page pagination`);
      const measured = await peakRss(() => sourceRead(server.base));
      read = Math.max(read, measured.result);
      growth = Math.max(growth, measured.growth);
    }
    const pageBytes = JSON.stringify({ data: Array.from({ length: PAGE_SIZE }, (_, i) => ({ id: i, sensor: `sensor-${i}`, value: 1.5, status: 'active', created_at: '2026-11-24T14:22:02.705Z' })) }).length;
    return {
      rows: [
        {
          case: `target: ${RECORDS.toLocaleString('en-US')} records, batches of ${BATCH}, max_in_flight ${IN_FLIGHT}`,
          figure: Math.round(target),
          unit: 'records/s',
          floor: Math.round(floor),
          ratio: Number((target / floor).toFixed(2)),
          note: `goal >= 20,000 records/s: ${target >= 20_000 ? 'met' : 'MISSED'}; floor = bare undici loop to the same server`,
        },
        {
          case: `datasource: ${PAGES} pages x ${PAGE_SIZE} records`,
          figure: Math.round(read),
          unit: 'records/s',
          floor: Math.round(readFloor),
          ratio: Number((read / readFloor).toFixed(2)),
          note: `peak RSS growth ${(growth / 1048576).toFixed(1)} MiB for ${((PAGES * pageBytes) / 1048576).toFixed(0)} MiB read (one page ~${(pageBytes / 1024).toFixed(0)} KiB)`,
        },
      ],
    };
  } finally {
    server.stop();
  }
}
