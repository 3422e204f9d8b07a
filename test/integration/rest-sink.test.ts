import { expect } from 'chai';
import { restSink, type RestSinkConfig } from '../../connectors/rest/rest-sink.js';
import type { MatchBatch, Sink } from '../../connectors/types.js';
import type { DeliveryPolicy } from '../../src/delivery/policy.js';
import { TargetQueue } from '../../src/delivery/target-queue.js';
import { describeError, serializeError } from '../../src/errors.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { drive, memoryLogger } from '../helpers.js';
import { closedPort, json, startRestServer, type RestServer } from '../support/rest-server.js';

const TOKEN = 'tok-0a1b2c3d4e5f6789';
const MATCHED_AT = '2026-03-04T05:06:07.000Z';
const COLUMNS = new ColumnLayout(['id', 'value', 'host'], { value: 'number' });

function batch(ids: number[], rule = 'hot'): MatchBatch {
  return { rule, datasource: 'sensors', runId: 'run-1', matchedAt: MATCHED_AT, layout: COLUMNS, rows: ids.map((i) => [`s${i}`, String(i * 10), `db-${i}`]) };
}

function objects(rows: Record<string, unknown>[], rule = 'hot'): MatchBatch {
  return { rule, datasource: 'sensors', runId: 'run-1', matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows };
}

const meta = (rule = 'hot') => ({ _rule: rule, _datasource: 'sensors', _run_id: 'run-1', _matched_at: MATCHED_AT });

describe('REST export target (against a server on 127.0.0.1)', function () {
  this.timeout(15_000);
  let server: RestServer;
  const sinks: Sink[] = [];

  beforeEach(async () => (server = await startRestServer()));
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((s) => s.close?.()));
    await server.stop();
  });

  async function sink(config: Partial<RestSinkConfig> = {}, log = memoryLogger().log): Promise<Sink> {
    const s = await restSink.create({ type: 'rest_api', url: `${server.base}/hook`, ...config }, { name: 'alerts', configDir: '.', log, signal: new AbortController().signal });
    sinks.push(s);
    return s;
  }

  function queue(s: Sink, policy: Partial<DeliveryPolicy> = {}) {
    const counts = { exported: 0, failed: 0 };
    const { log, lines } = memoryLogger();
    const q = new TargetQueue(
      'alerts',
      s,
      { batchSize: 500, batchBytes: 1 << 24, lingerMs: 0, maxInFlight: 4, retry: { maxAttempts: 4, initialBackoffMs: 10, maxBackoffMs: 5000 }, ...policy },
      { signal: new AbortController().signal, log },
      { exported: (_r, n) => (counts.exported += n), failed: (_r, n) => (counts.failed += n) },
    );
    return { q, counts, lines };
  }

  describe('what the receiver gets', () => {
    it('a batch is one POST whose body is a JSON array of the records, with metadata, headers and an Idempotency-Key', async () => {
      const s = await sink({ headers: { Authorization: `Bearer ${TOKEN}`, 'X-Team': 'ops' } });
      await drive(s).write(batch([1, 2]));
      expect(server.requests).to.have.lengthOf(1);
      const [req] = server.requests;
      expect(req!.method).to.equal('POST');
      expect(req!.path).to.equal('/hook');
      expect(req!.headers['content-type']).to.equal('application/json');
      expect(req!.headers.authorization).to.equal(`Bearer ${TOKEN}`);
      expect(req!.headers['x-team']).to.equal('ops');
      expect(req!.headers['idempotency-key']).to.match(/^[0-9a-f]{32}$/);
      expect(JSON.parse(req!.body)).to.deep.equal([
        { id: 's1', value: 10, host: 'db-1', ...meta() },
        { id: 's2', value: 20, host: 'db-2', ...meta() },
      ]);
    });

    it('with batch_size above 1 a lone record is still an array; with batch_size 1 the body is the record; PUT is allowed', async () => {
      await drive(await sink({ include_metadata: false })).write(batch([7]));
      await drive(await sink({ batch_size: 1, method: 'PUT', include_metadata: false })).write(objects([{ id: 'o1', nested: { a: [1, 'x'] }, text: 'a "quoted"\nline' }]));
      expect(JSON.parse(server.requests[0]!.body)).to.deep.equal([{ id: 's7', value: 70, host: 'db-7' }]);
      expect(server.requests[1]!.method).to.equal('PUT');
      expect(JSON.parse(server.requests[1]!.body)).to.deep.equal({ id: 'o1', nested: { a: [1, 'x'] }, text: 'a "quoted"\nline' });
    });

    it('a Slack body template: one message per record, values escaped so they cannot add keys', async () => {
      const s = await sink({ batch_size: 1, body_template: '{"text": ":fire: {rule}: {host} reads {value} ({id})"}' });
      await drive(s).write(objects([{ id: 'x"}, "admin": true, "y": "', host: 'db\n1', value: 1500 }]));
      const body = JSON.parse(server.requests[0]!.body);
      expect(body).to.deep.equal({ text: ':fire: hot: db\n1 reads 1500 (x"}, "admin": true, "y": ")' });
      expect(Object.keys(body)).to.deep.equal(['text']);
    });

    it('a PagerDuty Events v2 template keeps value types and uses a per-record dedup key; several records make an array', async () => {
      const template = JSON.stringify({
        routing_key: 'R0UT1NGKEY',
        event_action: 'trigger',
        dedup_key: '{rule}-{id}',
        payload: { summary: '{rule} on {host:-unknown}', source: '{host:-unknown}', severity: 'critical', custom_details: '{.}' },
      }).replace('"{.}"', '{.}');
      await drive(await sink({ body_template: template, include_metadata: false })).write(batch([1, 2]));
      const body = JSON.parse(server.requests[0]!.body);
      expect(body).to.have.lengthOf(2);
      expect(body[1]).to.deep.equal({
        routing_key: 'R0UT1NGKEY',
        event_action: 'trigger',
        dedup_key: 'hot-s2',
        payload: { summary: 'hot on db-2', source: 'db-2', severity: 'critical', custom_details: { id: 's2', value: 20, host: 'db-2' } },
      });
    });

    it('a record missing a template field fails that write with TEMPLATE_MISSING_FIELD, and nothing is sent', async () => {
      const s = await sink({ batch_size: 1, body_template: '{"routing_key": "R0UT1NG-KEY-FROM-ENV", "text": "{host}"}' });
      const err = await drive(s).write(objects([{ id: 1 }])).then(
        () => expect.fail('should fail'),
        (e: unknown) => e,
      );
      expect((err as { code: string }).code).to.equal('TEMPLATE_MISSING_FIELD');
      expect(describeError(err)).to.equal(
        'sending 1 record to export target "alerts": filling in the body template or the URL: the record has no field "host" (or it is null); give a default with {host:-default}',
      );
      expect(JSON.stringify(serializeError(err)), 'the template (and a secret in it) is not quoted').to.not.include('R0UT1NG');
      expect(server.requests).to.have.lengthOf(0);
    });

    it('the URL can hold run-level names, percent-encoded', async () => {
      await drive(await sink({ url: `${server.base}/rules/{rule}/events?ds={datasource}` })).write(batch([1], 'a/b c'));
      expect(server.requests[0]!.url).to.equal('/rules/a%2Fb%20c/events?ds=sensors');
    });

    it('validate: a record field in the URL needs batch_size 1; a body template must be JSON', () => {
      const issues = restSink.validate!({ type: 'rest_api', url: 'http://x.example/{id}', body_template: '{"a": {b}' });
      expect(issues.map((i) => i.key)).to.deep.equal(['url', 'body_template']);
      expect(issues[0]!.message).to.include('set batch_size: 1');
      expect(restSink.validate!({ type: 'rest_api', url: 'http://x.example/{id}', batch_size: 1 })).to.deep.equal([]);
    });

    it('validate: a URL that cannot be parsed, a header name that is not a token, a header value with a line break', () => {
      for (const url of ['http://alerts.example.com:99999/api', 'http://[bad/x', 'http://a b.example/x/{rule}']) {
        const issues = restSink.validate!({ type: 'rest_api', url });
        expect(issues.map((i) => i.key), url).to.deep.equal(['url']);
        expect(issues[0]!.message).to.match(/is not a valid URL/);
      }
      const issues = restSink.validate!({ type: 'rest_api', url: 'http://x.example/', headers: { 'X Bad': 'v', Authorization: `Bearer ${TOKEN}\n` } });
      expect(issues.map((i) => i.key)).to.deep.equal([['headers', 'X Bad'], ['headers', 'Authorization']]);
      expect(issues[1]!.message).to.include('holds a line break');
      expect(JSON.stringify(issues)).to.not.include(TOKEN);
    });
  });

  describe('retries and failures, through the queue the cycle uses', () => {
    it('a 500 then a 200 is delivered once, with the same Idempotency-Key on both tries', async () => {
      let calls = 0;
      server.handle((_req, res) => {
        if (++calls === 1) res.writeHead(500, { 'content-type': 'text/plain' }).end('oops');
        else json(res, { ok: true });
      });
      const { q, counts } = queue(await sink());
      await q.add(batch([1, 2, 3]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(2);
      const [first, second] = server.requests;
      expect(second!.headers['idempotency-key']).to.equal(first!.headers['idempotency-key']);
      expect(second!.body).to.equal(first!.body);
      expect(counts).to.deep.equal({ exported: 3, failed: 0 });
    });

    it('a connection cut mid-answer is retried with the same Idempotency-Key, and counted once', async () => {
      let calls = 0;
      server.handle((_req, res, raw) => {
        if (++calls > 1) return json(res, { ok: true });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"ok":');
        setTimeout(() => raw.socket.destroy(), 10);
      });
      const { q, counts } = queue(await sink());
      await q.add(batch([1, 2]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(2);
      expect(server.requests[1]!.headers['idempotency-key']).to.equal(server.requests[0]!.headers['idempotency-key']);
      expect(counts).to.deep.equal({ exported: 2, failed: 0 });
    });

    it('a 429 with Retry-After: 1 waits a second, then delivers', async () => {
      let calls = 0;
      server.handle((_req, res) => {
        if (++calls === 1) res.writeHead(429, { 'retry-after': '1' }).end();
        else json(res, {});
      });
      const { q, counts } = queue(await sink());
      await q.add(batch([1]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(2);
      expect(server.requests[1]!.at - server.requests[0]!.at).to.be.at.least(950);
      expect(counts).to.deep.equal({ exported: 1, failed: 0 });
    });

    it('a 400 is not retried, is reported with status and body, and the next batch still goes', async () => {
      server.handle((req, res) => {
        if (req.body.includes('"s1"')) res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"unknown field value"}');
        else json(res, {});
      });
      const { q, counts, lines } = queue(await sink(), { batchSize: 2, maxInFlight: 1 });
      await q.add(batch([1, 2, 3, 4]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(2);
      expect(counts).to.deep.equal({ exported: 2, failed: 2 });
      const status = q.status();
      expect(status.ok).to.equal(false);
      expect(status.error).to.match(/sending 2 records to export target "alerts": POST http:\/\/127\.0\.0\.1:\d+\/hook answered HTTP 400: \{"error":"unknown field value"\}/);
      const logged = lines().find((l) => l.msg === 'export target failed') as { err: { code: string; details: Record<string, unknown> } };
      expect(logged.err.code).to.equal('HTTP_400');
      expect(logged.err.details).to.include({ status: 400, body: '{"error":"unknown field value"}' });
    });

    it('a server that never answers, or stalls after the headers, ends in a TIMEOUT naming the target', async () => {
      server.handle((req, res) => {
        if (req.path === '/half') res.writeHead(200).write('{');
      });
      for (const path of ['/never', '/half']) {
        const started = Date.now();
        const { q, counts } = queue(await sink({ url: `${server.base}${path}`, timeout: 0.3 }), { retry: { maxAttempts: 2, initialBackoffMs: 10, maxBackoffMs: 100 } });
        await q.add(batch([1]));
        await q.finish();
        expect(counts).to.deep.equal({ exported: 0, failed: 1 });
        expect(q.status().error).to.match(/gave up after 2 attempts: sending 1 record to export target "alerts": POST .*\/(never|half): (no complete response|no response|the response body stalled)/);
        expect(Date.now() - started).to.be.below(3000);
      }
    });

    it('never more requests at once than max_in_flight, and the counts equal what the server received', async () => {
      server.handle((_req, res) => {
        setTimeout(() => json(res, {}), 30);
      });
      const { q, counts } = queue(await sink(), { batchSize: 10, maxInFlight: 3 });
      for (let i = 0; i < 10; i++) await q.add(batch(Array.from({ length: 25 }, (_, k) => i * 25 + k)));
      await q.finish();
      expect(server.inFlight.max).to.equal(3);
      const received = server.receivedRecords();
      expect(received).to.have.lengthOf(250);
      expect(new Set(received.map((r) => r.id)).size).to.equal(250);
      expect(counts).to.deep.equal({ exported: received.length, failed: 0 });
    });

    it('concurrency: is the same bound under the name webhook users expect', async () => {
      const { deliveryPolicyFor } = await import('../../src/pipeline/runtime.js');
      server.handle((_req, res) => {
        setTimeout(() => json(res, {}), 30);
      });
      const config = { type: 'rest_api', url: `${server.base}/hook`, concurrency: 2, batch_size: 10 };
      const policy = deliveryPolicyFor(config);
      expect(policy.maxInFlight).to.equal(2);
      const { q, counts } = queue(await sink(config as Partial<RestSinkConfig>), { batchSize: policy.batchSize, maxInFlight: policy.maxInFlight });
      for (let i = 0; i < 6; i++) await q.add(batch(Array.from({ length: 10 }, (_, k) => i * 10 + k)));
      await q.finish();
      expect(server.inFlight.max).to.equal(2);
      expect(counts).to.deep.equal({ exported: 60, failed: 0 });
      expect(restSink.validate!({ type: 'rest_api', url: 'http://x/', concurrency: 2, max_in_flight: 3 } as RestSinkConfig)).to.deep.equal([
        { key: 'concurrency', message: 'concurrency is another name for max_in_flight: set one of them, not both' },
      ]);
    });

    it('a redirect is not followed (it would turn the POST into a bodiless GET) and is reported with where it leads', async () => {
      server.handle((req, res) => {
        if (req.path === '/hook') res.writeHead(301, { location: '/moved' }).end();
        else json(res, {});
      });
      const { q, counts } = queue(await sink());
      await q.add(batch([1]));
      await q.finish();
      expect(server.requests.map((r) => `${r.method} ${r.path}`)).to.deep.equal(['POST /hook']);
      expect(counts).to.deep.equal({ exported: 0, failed: 1 });
      expect(q.status().error).to.match(
        /^sending 1 record to export target "alerts": POST http:\/\/127\.0\.0\.1:\d+\/hook: answered 301, a redirect to \/moved, which a POST does not follow \(it would be sent again as a GET without its body\): set the URL to that address$/,
      );
    });

    it('a 2xx whose answer is larger than max_response_bytes still counts as delivered', async () => {
      server.handle((_req, res) => json(res, { echo: 'x'.repeat(8192) }));
      const { q, counts } = queue(await sink({ max_response_bytes: 1024 }));
      await q.add(batch([1, 2]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(1);
      expect(counts).to.deep.equal({ exported: 2, failed: 0 });
    });

    it('a 2xx that declares an answer longer than max_response_bytes still counts as delivered, once', async () => {
      server.handle((_req, res) => void res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' }).end(`"${'x'.repeat(4094)}"`));
      const { q, counts } = queue(await sink({ max_response_bytes: 1024 }));
      await q.add(batch([1, 2]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(1);
      expect(counts).to.deep.equal({ exported: 2, failed: 0 });
    });

    it('a 503 that declares a long answer is retried after its Retry-After, then delivered', async () => {
      let calls = 0;
      server.handle((_req, res) => {
        if (calls++ === 0) res.writeHead(503, { 'retry-after': '0', 'content-length': '4096' }).end('y'.repeat(4096));
        else json(res, {});
      });
      const { q, counts } = queue(await sink({ max_response_bytes: 1024 }));
      await q.add(batch([1]));
      await q.finish();
      expect(server.requests).to.have.lengthOf(2);
      expect(counts).to.deep.equal({ exported: 1, failed: 0 });
    });

    it('a record value of ".." in a URL path placeholder cannot move the request up a level', async () => {
      const { q } = queue(await sink({ url: `${server.base}/api/hosts/{host}/alerts?from={host}`, batch_size: 1 }), { batchSize: 1, maxInFlight: 1 });
      await q.add(objects([{ host: '..' }, { host: '.' }, { host: 'web-1' }]));
      await q.finish();
      expect(server.requests.map((r) => r.url)).to.deep.equal(['/api/hosts/__/alerts?from=..', '/api/hosts/_/alerts?from=.', '/api/hosts/web-1/alerts?from=web-1']);
    });

    it('the token never appears in errors or logs, even when the server echoes it back', async () => {
      server.handle((req, res) => void res.writeHead(401, { 'content-type': 'text/plain' }).end(`invalid token: ${req.headers.authorization}`));
      const createLog = memoryLogger();
      const { q, lines } = queue(await sink({ headers: { Authorization: `Bearer ${TOKEN}` } }, createLog.log));
      await q.add(batch([1]));
      await q.finish();
      expect(q.status().error).to.include('HTTP 401: invalid token: ***');
      expect(JSON.stringify([...lines(), ...createLog.lines(), q.status()])).to.not.include(TOKEN);
    });
  });

  describe('a webhook URL that carries its token', () => {
    const HOOK_TOKEN = 'XyZ0aB1cD2eF3gH4iJ5kL6mN';

    it('is sent as configured, and hidden in errors, logs and check notes', async () => {
      server.handle((req, res) => void res.writeHead(404, { 'content-type': 'text/plain' }).end(`no hook at ${req.url}`));
      const url = `${server.base}/services/T0001/B0002/${HOOK_TOKEN}?sig=${HOOK_TOKEN}-sig&since=2026-01-01T00:00:00Z`;
      const s = await sink({ url });
      const { q, lines } = queue(s);
      await q.add(batch([1]));
      await q.finish();
      expect(server.requests[0]!.path).to.equal(`/services/T0001/B0002/${HOOK_TOKEN}`);
      const error = q.status().error!;
      expect(error).to.match(/answered HTTP 404: no hook at \/services\/T0001\/B0002\/\*\*\*\?sig=\*\*\*&since=2026-01-01T00:00:00Z/);
      const note = await drive(s).check();
      expect(JSON.stringify([error, lines(), note])).to.not.include(HOOK_TOKEN);
    });
  });

  describe('check', () => {
    it('sends a HEAD, nothing else, and any HTTP answer means reachable', async () => {
      server.handle((_req, res) => void res.writeHead(405).end());
      const note = await drive(await sink({ url: `${server.base}/hook/{rule}` })).check();
      expect(note).to.match(/^reachable: HEAD http:\/\/127\.0\.0\.1:\d+\/hook\/ answered HTTP 405$/);
      expect(server.requests.map((r) => [r.method, r.body])).to.deep.equal([['HEAD', '']]);
    });

    it('an endpoint that redirects fails the check: every write would fail on it', async () => {
      server.handle((_req, res) => void res.writeHead(307, { location: '/elsewhere' }).end());
      const err = await drive(await sink()).check()!.then(
        () => expect.fail('check should fail'),
        (e: unknown) => e,
      );
      expect(describeError(err)).to.match(/^checking export target "alerts": HEAD http:\/\/127\.0\.0\.1:\d+\/hook answered HTTP 307, a redirect, which export targets do not follow/);
    });

    it('an unreachable endpoint fails naming the target and the address, never the token', async () => {
      const port = await closedPort();
      const s = await sink({ url: `http://127.0.0.1:${port}/hook`, headers: { Authorization: `Bearer ${TOKEN}` } });
      const err = await drive(s).check()!.then(
        () => expect.fail('check should fail'),
        (e: unknown) => e,
      );
      const message = describeError(err);
      expect(message).to.match(new RegExp(`^checking export target "alerts": http://127.0.0.1:${port}/hook cannot be reached: .*ECONNREFUSED`));
      expect(message).to.not.include(TOKEN);
    });
  });
});
