import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ConnectorError, describeError } from '../../src/errors.js';
import { HttpClient, parseRetryAfter, readJson } from '../../src/http/client.js';
import { agentUsers } from '../../src/http/dispatcher.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A server on 127.0.0.1 that routes by path, counts the connections it accepted, and can cut them all. */
async function startServer(routes: Record<string, Handler>): Promise<{ base: string; connections: () => number; stop: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((req, res) => {
    const route = routes[new URL(req.url!, 'http://x').pathname];
    if (route) route(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('no such thing');
  });
  server.on('connection', (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => accepted,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function failure(promise: Promise<unknown>): Promise<ConnectorError> {
  try {
    await promise;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(ConnectorError);
    return err as ConnectorError;
  }
  expect.fail('should have failed');
}

describe('HTTP client (against servers on 127.0.0.1)', function () {
  this.timeout(10_000);
  let server: Awaited<ReturnType<typeof startServer>>;
  let client: HttpClient;
  const SECRET = 'Bearer s3cr3t-t0ken-value';
  const landed: string[] = [];

  before(async () => {
    server = await startServer({
      '/ok': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
      '/echo-ua': (req, res) => res.writeHead(200).end(req.headers['user-agent']),
      '/stall': () => {
        // never answers
      },
      '/stall-body': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/csv' });
        res.write('a,b\n');
      },
      '/endless': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      },
      '/big-declared': (_req, res) => res.writeHead(200, { 'content-length': String(10_000_000) }).end(),
      '/busy-big': (_req, res) => {
        // declares far more than the cap; sends enough for the excerpt, then stops
        res.writeHead(503, { 'content-length': String(2_000_000), 'retry-after': '3', 'content-type': 'text/plain' });
        res.write(`overloaded ${'x'.repeat(600)}`);
      },
      '/loop': (req, res) => res.writeHead(302, { location: `${req.url!.split('?')[0]}?again=${Math.random()}` }).end(),
      '/self': (_req, res) => res.writeHead(302, { location: '/self' }).end(),
      '/ping': (_req, res) => res.writeHead(307, { location: '/pong' }).end(),
      '/pong': (_req, res) => res.writeHead(307, { location: '/ping' }).end(),
      '/moved': (_req, res) => res.writeHead(302, { location: '/landed' }).end(),
      '/landed': (req, res) => {
        landed.push(req.method!);
        res.writeHead(200).end('{}');
      },
      '/hop': (_req, res) => res.writeHead(301, { location: '/ok' }).end(),
      '/busy': (_req, res) => res.writeHead(503, { 'retry-after': '7', 'content-type': 'text/plain' }).end('try later'),
      '/busy-date': (_req, res) => res.writeHead(429, { 'retry-after': new Date(Date.now() + 60_000).toUTCString() }).end(),
      '/missing': (_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end(`<h1>Not found</h1>${'x'.repeat(2000)}`),
      '/echo-auth': (req, res) => res.writeHead(401, { 'content-type': 'text/plain' }).end(`bad credentials: ${req.headers.authorization} (token ${req.headers.authorization!.split(' ')[1]})`),
      '/not-json': (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'),
    });
  });
  after(() => server.stop());
  beforeEach(() => (client = new HttpClient({ headers: { Authorization: SECRET }, timeoutMs: 300 })));
  afterEach(() => client.close());

  it('sends threshold-processor/<version> as user-agent and reads JSON', async () => {
    const ua = await (await client.request({ url: `${server.base}/echo-ua` })).text();
    expect(ua).to.match(/^threshold-processor\/\d+\.\d+\.\d+/);
    expect(await readJson(await client.request({ url: `${server.base}/ok` }))).to.deep.equal({ ok: true });
  });

  it('times out on a server that never answers, retryably', async () => {
    const err = await failure(client.request({ url: `${server.base}/stall` }));
    expect(err.code).to.equal('TIMEOUT');
    expect(err.retryable).to.equal(true);
    expect(err.message).to.match(/^GET http:\/\/127\.0\.0\.1:\d+\/stall: no response within 300 ms$/);
  });

  it('times out on a body that stops coming, and on the overall deadline', async () => {
    const response = await client.request({ url: `${server.base}/stall-body` });
    expect((await failure(response.text())).message).to.match(/the response body stalled for 300 ms/);
    const slow = new HttpClient({ timeoutMs: 5_000, deadlineMs: 200 });
    try {
      const started = Date.now();
      const err = await failure(slow.request({ url: `${server.base}/stall` }));
      expect(err.code).to.equal('TIMEOUT');
      expect(err.message).to.match(/no complete response within 200 ms/);
      expect(Date.now() - started).to.be.lessThan(1000);
    } finally {
      await slow.close();
    }
  });

  it('an AbortSignal cancels a hung request within a second', async () => {
    const patient = new HttpClient({ timeoutMs: 60_000 });
    try {
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(), 100);
      const err = await failure(patient.request({ url: `${server.base}/stall`, signal: controller.signal }));
      expect(err.code).to.equal('CANCELLED');
      expect(Date.now() - started).to.be.lessThan(1000);
      // and while reading the body
      const body = new AbortController();
      const response = await patient.request({ url: `${server.base}/stall-body`, signal: body.signal });
      setTimeout(() => body.abort(), 100);
      expect((await failure(response.text())).code).to.equal('CANCELLED');
      // an already aborted signal does not even connect
      expect((await failure(patient.request({ url: `${server.base}/ok`, signal: AbortSignal.abort() }))).code).to.equal('CANCELLED');
    } finally {
      await patient.close();
    }
  });

  it('stops reading an endless body at the size cap with RESPONSE_TOO_LARGE', async () => {
    const capped = new HttpClient({ maxResponseBytes: 1024 * 1024 });
    try {
      const response = await capped.request({ url: `${server.base}/endless` });
      const err = await failure(response.text());
      expect(err.code).to.equal('RESPONSE_TOO_LARGE');
      expect(err.retryable).to.equal(false);
      expect(err.details.status).to.equal(200);
      // a declared length over the cap fails the first read, before any of the body is read; the status is known
      const declared = await capped.request({ url: `${server.base}/big-declared` });
      expect(declared.status).to.equal(200);
      const tooLarge = await failure(declared.text());
      expect(tooLarge.code).to.equal('RESPONSE_TOO_LARGE');
      expect(tooLarge.message).to.include('it declares 10000000 bytes');
    } finally {
      await capped.close();
    }
  });

  it('a 503 that declares a body over the cap is still a retryable 503 with its Retry-After and excerpt', async () => {
    const capped = new HttpClient({ maxResponseBytes: 1024 * 1024 });
    try {
      const err = await failure(capped.request({ url: `${server.base}/busy-big` }));
      expect(err.code).to.equal('HTTP_503');
      expect(err.retryable).to.equal(true);
      expect(err.retryAfterMs).to.equal(3000);
      expect(err.message).to.match(/answered HTTP 503: overloaded x+/);
    } finally {
      await capped.close();
    }
  });

  it('a redirect back to an address already visited is a loop: TOO_MANY_REDIRECTS, not retried', async () => {
    for (const path of ['/self', '/ping']) {
      const err = await failure(client.request({ url: `${server.base}${path}` }));
      expect(err.code, path).to.equal('TOO_MANY_REDIRECTS');
      expect(err.retryable).to.equal(false);
      expect(err.message).to.equal(`GET ${server.base}${path}: the redirects lead back to an address already visited (a redirect loop)`);
    }
  });

  it('a request with a body does not follow a redirect (undici would resend it as a GET without the body)', async () => {
    landed.length = 0;
    const err = await failure(client.request({ url: `${server.base}/moved`, method: 'POST', body: '{"filter":"hot"}' }));
    expect(err.code).to.equal('TOO_MANY_REDIRECTS');
    expect(err.message).to.equal(
      `POST ${server.base}/moved: answered 302, a redirect to /landed, which a POST does not follow (it would be sent again as a GET without its body): set the URL to that address`,
    );
    expect(landed).to.deep.equal([]);
    // a GET does follow it
    expect(await readJson(await client.request({ url: `${server.base}/moved` }))).to.deep.equal({});
    expect(landed).to.deep.equal(['GET']);
  });

  it('follows redirects up to the limit, then fails clearly', async () => {
    expect(await readJson(await client.request({ url: `${server.base}/hop` }))).to.deep.equal({ ok: true });
    const err = await failure(client.request({ url: `${server.base}/loop` }));
    expect(err.code).to.equal('TOO_MANY_REDIRECTS');
    expect(err.message).to.match(/more than 5 redirects \(the last answered 302 to \/loop\?again=/);
  });

  it('503 and 429 are retryable with Retry-After in seconds or as a date', async () => {
    const busy = await failure(client.request({ url: `${server.base}/busy` }));
    expect(busy.code).to.equal('HTTP_503');
    expect(busy.retryable).to.equal(true);
    expect(busy.retryAfterMs).to.equal(7000);
    expect(busy.details).to.include({ status: 503, content_type: 'text/plain', body: 'try later' });
    const limited = await failure(client.request({ url: `${server.base}/busy-date` }));
    expect(limited.retryable).to.equal(true);
    expect(limited.retryAfterMs).to.be.within(55_000, 60_000);
    expect(parseRetryAfter('soon')).to.equal(undefined);
  });

  it('404 is permanent, with the status, the content type and the first 500 bytes of the body', async () => {
    const err = await failure(client.request({ url: `${server.base}/missing` }));
    expect(err.code).to.equal('HTTP_404');
    expect(err.retryable).to.equal(false);
    expect(err.retryAfterMs).to.equal(undefined);
    expect(err.details.status).to.equal(404);
    expect(err.details.content_type).to.equal('text/html');
    expect(err.details.body).to.have.length(500).and.match(/^<h1>Not found<\/h1>x+$/);
    expect(err.message).to.match(/^GET http:\/\/127\.0\.0\.1:\d+\/missing answered HTTP 404: <h1>Not found<\/h1>x+\.\.\.$/);
  });

  it('a configured header value never appears in an error, even when the server echoes it', async () => {
    const err = await failure(client.request({ url: `${server.base}/echo-auth` }));
    const everything = [describeError(err), JSON.stringify(err.details)].join('\n');
    expect(everything).not.to.include('s3cr3t-t0ken-value');
    expect(err.message).to.include('bad credentials: ***');
    const inUrl = await failure(client.request({ url: `${server.base}/missing?key=s3cr3t-t0ken-value&x=${encodeURIComponent(SECRET)}` }));
    expect(describeError(inUrl)).not.to.include('s3cr3t-t0ken-value');
  });

  it('says what a body that is not JSON held', async () => {
    const err = await failure(readJson(await client.request({ url: `${server.base}/not-json` })));
    expect(err.code).to.equal('INVALID_JSON');
    expect(err.details).to.include({ status: 200, content_type: 'text/html', body: '<html>login</html>' });
  });

  it('a refused connection is retryable with its code', async () => {
    const closed = await startServer({});
    const base = closed.base;
    await closed.stop();
    const err = await failure(client.request({ url: `${base}/ok` }));
    expect(err.code).to.equal('ECONNREFUSED');
    expect(err.retryable).to.equal(true);
  });

  it('keeps connections alive: several requests, from two clients, share one connection', async () => {
    const fresh = await startServer({ '/ok': (_req, res) => res.writeHead(200).end('ok') });
    const other = new HttpClient();
    try {
      for (let i = 0; i < 3; i++) await (await client.request({ url: `${fresh.base}/ok` })).dump();
      for (let i = 0; i < 3; i++) expect(await (await other.request({ url: `${fresh.base}/ok` })).text()).to.equal('ok');
      expect(fresh.connections()).to.equal(1);
    } finally {
      await other.close();
      await fresh.stop();
    }
  });

  it('the shared pools close when the last client closes', async () => {
    const a = new HttpClient();
    const b = new HttpClient();
    await (await a.request({ url: `${server.base}/ok` })).dump();
    await (await b.request({ url: `${server.base}/ok` })).dump();
    const held = agentUsers();
    await a.close();
    expect(agentUsers()).to.equal(held - 1);
    await b.close();
    expect(agentUsers()).to.equal(held - 2);
  });
});
