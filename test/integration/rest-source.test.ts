import { expect } from 'chai';
import { restSource, type RestSourceConfig } from '../../connectors/rest/rest-source.js';
import type { Source } from '../../connectors/types.js';
import { ConnectorError, describeError, serializeError } from '../../src/errors.js';
import { memoryLogger } from '../helpers.js';
import { closedPort, json, startRestServer, type RestServer } from '../support/rest-server.js';

const TOKEN = 'tok-9f8e7d6c5b4a3210';
const FAST_RETRY = { max_attempts: 3, initial_backoff: '10ms', max_backoff: '5s' };

type Row = Record<string, unknown>;

describe('REST datasource (against a server on 127.0.0.1)', function () {
  this.timeout(15_000);
  let server: RestServer;
  const sources: Source[] = [];

  beforeEach(async () => (server = await startRestServer()));
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.close?.()));
    await server.stop();
  });

  async function source(config: Partial<RestSourceConfig> & { url?: string }): Promise<Source> {
    const s = await restSource.create(
      { type: 'rest_api', url: `${server.base}/items`, retry: FAST_RETRY, ...config },
      { name: 'api', configDir: '.', log: memoryLogger().log, signal: new AbortController().signal },
    );
    sources.push(s);
    return s;
  }

  async function readAll(s: Source, batchSize = 1000, log = memoryLogger().log): Promise<{ rows: Row[]; batches: number }> {
    const rows: Row[] = [];
    let batches = 0;
    for await (const batch of s.read({ signal: new AbortController().signal, log, batchSize })) {
      batches++;
      for (const row of batch.rows) rows.push(batch.layout.toRecord(row));
    }
    return { rows, batches };
  }

  async function failure(s: Source, log = memoryLogger().log): Promise<ConnectorError> {
    try {
      await readAll(s, 1000, log);
    } catch (err) {
      expect(err, String(err)).to.be.instanceOf(ConnectorError);
      return err as ConnectorError;
    }
    return expect.fail('the read should have failed');
  }

  describe('the request and the records', () => {
    it('sends method, headers, query and JSON body, and reads the array at records_path', async () => {
      server.handle((req, res) => json(res, { data: { items: [{ id: 1, meta: { host: 'a' } }, { id: 2, meta: { host: 'b' } }] } }));
      const s = await source({
        url: `${server.base}/items?fixed=1`,
        method: 'POST',
        headers: { Authorization: `Bearer ${TOKEN}` },
        query: { status: 'active', limit: 5, deep: true },
        body: { filter: { level: 'error' } },
        records_path: 'data.items',
      });
      const { rows } = await readAll(s);
      expect(rows).to.deep.equal([
        { id: 1, meta: { host: 'a' } },
        { id: 2, meta: { host: 'b' } },
      ]);
      const [req] = server.requests;
      expect(req!.method).to.equal('POST');
      expect(req!.path).to.equal('/items');
      expect([...req!.query]).to.deep.equal([
        ['fixed', '1'],
        ['status', 'active'],
        ['limit', '5'],
        ['deep', 'true'],
      ]);
      expect(req!.headers.authorization).to.equal(`Bearer ${TOKEN}`);
      expect(req!.headers['content-type']).to.equal('application/json');
      expect(req!.headers.accept).to.equal('application/json');
      expect(JSON.parse(req!.body)).to.deep.equal({ filter: { level: 'error' } });
    });

    it('GET by default; the response itself is the array; `params` (the older name) works', async () => {
      server.handle((_req, res) => json(res, [{ id: 'a' }, { id: 'b' }, { id: 'c' }]));
      const { rows, batches } = await readAll(await source({ params: { q: 'x' } }), 2);
      expect(rows.map((r) => r.id)).to.deep.equal(['a', 'b', 'c']);
      expect(batches).to.equal(2);
      expect(server.requests[0]!.method).to.equal('GET');
      expect(server.requests[0]!.query.get('q')).to.equal('x');
      expect(server.requests[0]!.body).to.equal('');
    });

    it('a single object is one record; dotted fields reach into it', async () => {
      server.handle((_req, res) => json(res, { status: 'ok', load: { cpu: 0.93 } }));
      const s = await source({});
      const batches = [];
      for await (const b of s.read({ signal: new AbortController().signal, log: memoryLogger().log, batchSize: 10 })) batches.push(b);
      expect(batches).to.have.lengthOf(1);
      expect(batches[0]!.rows).to.deep.equal([{ status: 'ok', load: { cpu: 0.93 } }]);
      expect(batches[0]!.layout.accessor('load.cpu')(batches[0]!.rows[0])).to.equal(0.93);
    });

    it('records_path that holds no array, or items that are not objects, fail with what was found', async () => {
      server.handle((_req, res) => json(res, { data: { items: { id: 1 } } }));
      let err = await failure(await source({ records_path: 'data.items' }));
      expect(err.code).to.equal('NO_RECORDS_ARRAY');
      expect(describeError(err)).to.match(/datasource "api".*no array of records at records_path "data.items" \(found an object\)/);
      expect(server.requests).to.have.lengthOf(1, 'a bad response is not retried');

      err = await failure(await source({ records_path: 'data.missing' }));
      expect(describeError(err)).to.include('(found nothing); check records_path');

      server.handle((_req, res) => json(res, [{ id: 1 }, 7]));
      err = await failure(await source({}));
      expect(err.code).to.equal('INVALID_RECORD');
      expect(describeError(err)).to.include('record 2 of the page is a number, not an object');
    });
  });

  describe('pagination', () => {
    /** 7 records served 3 per page by number: pages 1..3 hold records, page 4 is empty. */
    function pagedByNumber(total: number) {
      server.handle((req, res) => {
        const page = Number(req.query.get('page'));
        const size = Number(req.query.get('per_page') ?? 3);
        const items = [];
        for (let i = (page - 1) * size; i < Math.min(total, page * size); i++) items.push({ id: i + 1 });
        json(res, { items });
      });
    }

    it('page: walks page numbers until the first empty page, sending the size', async () => {
      pagedByNumber(7);
      const { rows } = await readAll(await source({ records_path: 'items', pagination: { type: 'page', size: 3 } }));
      expect(rows.map((r) => r.id)).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
      expect(server.requests.map((r) => [r.query.get('page'), r.query.get('per_page')])).to.deep.equal([
        ['1', '3'],
        ['2', '3'],
        ['3', '3'],
        ['4', '3'],
      ]);
    });

    it('page: a 204 No Content is an empty page, and ends the read', async () => {
      server.handle((req, res) => {
        if (req.query.get('page') === '1') json(res, [{ id: 1 }]);
        else res.writeHead(204).end();
      });
      const { rows } = await readAll(await source({ pagination: { type: 'page' } }));
      expect(rows).to.deep.equal([{ id: 1 }]);
      expect(server.requests).to.have.lengthOf(2);
    });

    it('page: hands each page on before asking for the next', async () => {
      pagedByNumber(9);
      const s = await source({ records_path: 'items', pagination: { type: 'page', size: 3 } });
      const seenAtBatch: number[] = [];
      for await (const _batch of s.read({ signal: new AbortController().signal, log: memoryLogger().log, batchSize: 100 })) {
        seenAtBatch.push(server.requests.length);
      }
      expect(seenAtBatch).to.deep.equal([1, 2, 3]);
    });

    it('page: max_pages cuts the read and says so in a warning', async () => {
      pagedByNumber(100);
      const { log, lines } = memoryLogger();
      const { rows } = await readAll(await source({ records_path: 'items', pagination: { type: 'page', size: 3, max_pages: 2, page_param: 'page' } }), 1000, log);
      expect(rows.map((r) => r.id)).to.deep.equal([1, 2, 3, 4, 5, 6]);
      expect(server.requests).to.have.lengthOf(2);
      expect(lines().find((l) => l.level === 40)?.msg).to.match(/max_pages/);
    });

    it('offset: advances by the records received, so a server that caps the page size loses nothing', async () => {
      server.handle((req, res) => {
        const offset = Number(req.query.get('skip'));
        const limit = Math.min(Number(req.query.get('take')), 4);
        const items = [];
        for (let i = offset; i < Math.min(10, offset + limit); i++) items.push({ id: i });
        json(res, items);
      });
      const { rows } = await readAll(await source({ pagination: { type: 'offset', offset_param: 'skip', limit_param: 'take', limit: 50 } }));
      expect(rows.map((r) => r.id)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(server.requests.map((r) => r.query.get('skip'))).to.deep.equal(['0', '4', '8', '10']);
      expect(new Set(server.requests.map((r) => r.query.get('take')))).to.deep.equal(new Set(['50']));
    });

    it('cursor: sends the cursor read from the response until there is none', async () => {
      const pages: Record<string, { items: Row[]; next: string | null }> = {
        '': { items: [{ id: 1 }, { id: 2 }], next: 'c2' },
        c2: { items: [{ id: 3 }], next: 'c/3&x' },
        'c/3&x': { items: [{ id: 4 }], next: null },
      };
      server.handle((req, res) => {
        const page = pages[req.query.get('after') ?? '']!;
        json(res, { data: page.items, meta: { next: page.next } });
      });
      const { rows } = await readAll(await source({ records_path: 'data', query: { q: 'z' }, pagination: { type: 'cursor', cursor_param: 'after', cursor_path: 'meta.next' } }));
      expect(rows.map((r) => r.id)).to.deep.equal([1, 2, 3, 4]);
      expect(server.requests.map((r) => [r.query.get('after'), r.query.get('q')])).to.deep.equal([
        [null, 'z'],
        ['c2', 'z'],
        ['c/3&x', 'z'],
      ]);
    });

    it('cursor: a cursor that comes back again fails instead of looping', async () => {
      server.handle((_req, res) => json(res, { data: [{ id: 1 }], next: 'same' }));
      const err = await failure(await source({ records_path: 'data', pagination: { type: 'cursor', cursor_path: 'next' } }));
      expect(err.code).to.equal('PAGINATION_LOOP');
      expect(server.requests).to.have.lengthOf(2);
    });

    it('link: follows rel="next" (relative or absolute, among other links) until there is none', async () => {
      server.handle((req, res) => {
        const page = Number(req.query.get('p') ?? 1);
        const links = [`<${server.base}/items?p=1>; rel="first"`];
        if (page === 1) links.push('</items?p=2>; rel="next"');
        if (page === 2) links.push(`<${server.base}/items?p=3>; rel="last next"`);
        json(res, [{ id: page }], 200, { link: links.join(', ') });
      });
      const { rows } = await readAll(await source({ pagination: { type: 'link' }, headers: { Authorization: `Bearer ${TOKEN}` } }));
      expect(rows.map((r) => r.id)).to.deep.equal([1, 2, 3]);
      expect(server.requests.map((r) => r.url)).to.deep.equal(['/items', '/items?p=2', '/items?p=3']);
      expect(server.requests.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).to.equal(true);
    });

    it('link: a next link to another origin is refused, so the token never goes there', async () => {
      const other = await startRestServer((_req, res) => json(res, [{ id: 'stolen' }]));
      try {
        server.handle((_req, res) => json(res, [{ id: 1 }], 200, { link: `<${other.base}/steal>; rel=next` }));
        const err = await failure(await source({ pagination: { type: 'link' }, headers: { Authorization: `Bearer ${TOKEN}` } }));
        expect(describeError(err)).to.include('another origin');
        expect(other.requests).to.have.lengthOf(0);
      } finally {
        await other.stop();
      }
    });
  });

  describe('retries, timeouts and bad responses', () => {
    it('a 503 then a 200 is read once, after a retry', async () => {
      let calls = 0;
      server.handle((_req, res) => {
        if (++calls === 1) res.writeHead(503).end('busy');
        else json(res, [{ id: 1 }]);
      });
      const { log, lines } = memoryLogger();
      const { rows } = await readAll(await source({}), 100, log);
      expect(rows).to.deep.equal([{ id: 1 }]);
      expect(server.requests).to.have.lengthOf(2);
      expect(lines().filter((l) => l.level === 40).map((l) => l.msg)).to.deep.equal(['reading page 1 of datasource "api" failed; trying again']);
    });

    it('a 429 with Retry-After: 1 waits a second, then reads', async () => {
      let calls = 0;
      server.handle((_req, res) => {
        if (++calls === 1) res.writeHead(429, { 'retry-after': '1' }).end();
        else json(res, [{ id: 1 }]);
      });
      const { rows } = await readAll(await source({}));
      expect(rows).to.have.lengthOf(1);
      expect(server.requests[1]!.at - server.requests[0]!.at).to.be.at.least(950);
    });

    it('a 400 is not retried, and the error shows the status and the body', async () => {
      server.handle((_req, res) => void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad filter"}'));
      const err = await failure(await source({}));
      expect(server.requests).to.have.lengthOf(1);
      expect(err.code).to.equal('HTTP_400');
      expect(describeError(err)).to.match(/reading page 1 of datasource "api": GET http:\/\/127\.0\.0\.1:\d+\/items answered HTTP 400: \{"error":"bad filter"\}/);
    });

    it('a server that sends headers and then stalls, or never answers, ends in a TIMEOUT naming the datasource', async () => {
      server.handle((req, res) => {
        if (req.path === '/half') res.writeHead(200, { 'content-type': 'application/json' }).write('[{"id":');
      });
      for (const path of ['/half', '/never']) {
        const started = Date.now();
        const err = await failure(await source({ url: `${server.base}${path}`, timeout: 0.3, retry: { max_attempts: 2, initial_backoff: '10ms' } }));
        expect(err.code).to.equal('TIMEOUT');
        expect(describeError(err)).to.match(/^reading page 1 of datasource "api": gave up after 2 attempts: GET .* (no complete response|no response|stalled)/);
        expect(Date.now() - started).to.be.below(3000);
      }
    });

    it('a server that closes the connection mid-body fails the read after its retries', async () => {
      server.handle((_req, res, raw) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('[{"id":1},{"id":');
        setTimeout(() => raw.socket.destroy(), 20);
      });
      const err = await failure(await source({}));
      expect(server.requests).to.have.lengthOf(3);
      expect(err.retryable).to.equal(true);
      expect(describeError(err)).to.match(/gave up after 3 attempts/);
    });

    it('a body over max_response_bytes is refused at once', async () => {
      server.handle((_req, res) => json(res, Array.from({ length: 200 }, (_, i) => ({ id: i, pad: 'x'.repeat(100) }))));
      const err = await failure(await source({ max_response_bytes: 4096 }));
      expect(err.code).to.equal('RESPONSE_TOO_LARGE');
      expect(server.requests).to.have.lengthOf(1);
    });

    it('a redirect loop is refused after max_redirects', async () => {
      server.handle((req, res) => void res.writeHead(302, { location: `/loop?n=${Number(req.query.get('n') ?? 0) + 1}` }).end());
      const err = await failure(await source({ max_redirects: 2 }));
      expect(err.code).to.equal('TOO_MANY_REDIRECTS');
      expect(server.requests).to.have.lengthOf(3);
    });

    it('HTML instead of JSON: status, content type and the first bytes, with the token hidden', async () => {
      server.handle((req, res) =>
        void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<html><body>Login required. You sent ${req.headers.authorization}</body></html>`),
      );
      const { log, lines } = memoryLogger();
      const err = await failure(await source({ headers: { Authorization: `Bearer ${TOKEN}` } }), log);
      expect(err.code).to.equal('INVALID_JSON');
      const message = describeError(err);
      expect(message).to.include('the response is not JSON');
      expect(message).to.include('HTTP 200, text/html; charset=utf-8, body starts "<html><body>Login required. You sent ***');
      expect(JSON.stringify(serializeError(err))).to.not.include(TOKEN);
      expect(JSON.stringify(lines())).to.not.include(TOKEN);
    });

    it('a cancelled read stops at once, even while a page request hangs', async () => {
      server.handle((req, res) => {
        if (req.query.get('page') === '1') json(res, [{ id: 1 }]);
        // page 2 never answers
      });
      const s = await source({ pagination: { type: 'page' }, timeout: 60 });
      const controller = new AbortController();
      const seen: unknown[] = [];
      const reading = (async () => {
        for await (const b of s.read({ signal: controller.signal, log: memoryLogger().log, batchSize: 10 })) seen.push(...b.rows);
      })();
      while (server.requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      const started = Date.now();
      controller.abort();
      const err = await reading.then(
        () => expect.fail('the read should be cancelled'),
        (e: unknown) => e as ConnectorError,
      );
      expect(err.code).to.equal('CANCELLED');
      expect(err.message).to.equal('reading page 2 of datasource "api": cancelled');
      expect(Date.now() - started).to.be.below(1000);
      expect(seen).to.deep.equal([{ id: 1 }]);
    });

    it('a POST datasource does not follow a redirect, which would drop its body; it says where it leads', async () => {
      server.handle((req, res) => {
        if (req.path === '/moved') res.writeHead(302, { location: '/elsewhere' }).end();
        else json(res, [{ id: 'unfiltered' }]);
      });
      const err = await failure(await source({ url: `${server.base}/moved`, method: 'POST', body: { filter: 'hot' } }));
      expect(err.code).to.equal('TOO_MANY_REDIRECTS');
      expect(describeError(err)).to.include('answered 302, a redirect to /elsewhere, which a POST does not follow');
      expect(server.requests.map((r) => `${r.method} ${r.path}`)).to.deep.equal(['POST /moved']);
    });

    it('a JSON body after a byte order mark is read', async () => {
      server.handle((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('\ufeff[{"id":1}]'));
      expect((await readAll(await source({}))).rows).to.deep.equal([{ id: 1 }]);
    });

    it('a JSON body cut short is not JSON', async () => {
      server.handle((_req, res) => void res.writeHead(200, { 'content-type': 'application/json', connection: 'close' }).end('[{"id":1},{"id"'));
      const err = await failure(await source({}));
      expect(err.code).to.equal('INVALID_JSON');
    });
  });

  describe('check', () => {
    it('requests the first page and says how many records it holds', async () => {
      server.handle((_req, res) => json(res, { items: [{ id: 1 }, { id: 2 }] }));
      const note = await (await source({ records_path: 'items', pagination: { type: 'page' } })).check!({ signal: new AbortController().signal, log: memoryLogger().log });
      expect(note).to.match(/^GET http:\/\/127\.0\.0\.1:\d+\/items\?page=1: 2 records on the first page$/);
      expect(server.requests).to.have.lengthOf(1);
    });

    it('fails naming the datasource and the address, never the token', async () => {
      const port = await closedPort();
      const s = await source({ url: `http://127.0.0.1:${port}/x?api_key=${TOKEN}`, headers: { Authorization: `Bearer ${TOKEN}` } });
      const err = await s.check!({ signal: new AbortController().signal, log: memoryLogger().log }).then(
        () => expect.fail('check should fail'),
        (e: unknown) => e,
      );
      const message = describeError(err);
      expect(message).to.include('checking datasource "api"');
      expect(message).to.include(`127.0.0.1:${port}`);
      expect(message).to.not.include(TOKEN);
    });
  });
});
