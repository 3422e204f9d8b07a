/**
 * A real HTTP server on 127.0.0.1 (ephemeral port) for the REST tests: each test says how it
 * answers, and reads back every request it received (method, path, headers, body) as a
 * consumer of the API would see them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  /** Path and query, as sent. */
  readonly url: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  /** When the request had been read in full (ms since the epoch). */
  readonly at: number;
}

export type RestHandler = (req: ReceivedRequest, res: ServerResponse, raw: IncomingMessage) => void | Promise<void>;

export interface RestServer {
  readonly base: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** Requests whose handler has not finished answering yet, and the most there ever were at once. */
  readonly inFlight: { now: number; max: number };
  handle(handler: RestHandler): void;
  /** Every JSON body received, each a record or an array of records, flattened into records. */
  receivedRecords(): Record<string, unknown>[];
  stop(): Promise<void>;
}

export async function startRestServer(handler: RestHandler = okHandler): Promise<RestServer> {
  const sockets = new Set<Socket>();
  const requests: ReceivedRequest[] = [];
  const inFlight = { now: 0, max: 0 };
  let current = handler;
  const server: Server = createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on('data', (c: Buffer) => chunks.push(c));
    raw.on('end', () => {
      const parsed = new URL(raw.url ?? '/', 'http://127.0.0.1');
      const req: ReceivedRequest = {
        method: raw.method ?? '',
        url: raw.url ?? '/',
        path: parsed.pathname,
        query: parsed.searchParams,
        headers: raw.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      requests.push(req);
      inFlight.now++;
      inFlight.max = Math.max(inFlight.max, inFlight.now);
      let counted = true;
      const done = () => {
        if (!counted) return;
        counted = false;
        inFlight.now--;
      };
      res.on('finish', done);
      res.on('close', done);
      Promise.resolve(current(req, res, raw)).catch((err) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    requests,
    inFlight,
    handle: (next) => (current = next),
    receivedRecords: () =>
      requests
        .filter((r) => r.method !== 'HEAD' && r.body !== '')
        .flatMap((r) => {
          const body = JSON.parse(r.body) as unknown;
          return (Array.isArray(body) ? body : [body]) as Record<string, unknown>[];
        }),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export const okHandler: RestHandler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
};

export function json(res: ServerResponse, value: unknown, status = 200, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));
}

/** A port on 127.0.0.1 nothing listens on (taken, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
