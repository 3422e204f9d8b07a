/**
 * An HTTP proxy in front of the test S3 server that loses requests or their answers, as a
 * connection that breaks at the wrong moment does. A request matching a loss is either forwarded,
 * applied by the server and its answer thrown away ('after the server'), or cut before it reaches
 * the server ('before the server'); either way the client's connection is destroyed and it sees a
 * reset, not an answer. Every other request passes through unchanged.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface Loss {
  readonly method: string;
  /** A test on the path and query. */
  readonly url: RegExp;
  readonly when: 'before the server' | 'after the server';
  /** How many matching requests are lost; default 1. */
  times?: number;
}

export interface AnswerLosingProxy {
  readonly endpoint: string;
  /** "METHOD path?query" of each request lost, in order, and whether the server had applied it. */
  readonly lost: { request: string; applied: boolean }[];
  loseNext(loss: Loss): void;
  close(): Promise<void>;
}

export async function startAnswerLosingProxy(upstream: string): Promise<AnswerLosingProxy> {
  const target = new URL(upstream);
  const losses: Loss[] = [];
  const lost: { request: string; applied: boolean }[] = [];
  const sockets = new Set<Socket>();

  const takeLoss = (req: IncomingMessage): Loss | undefined => {
    const loss = losses.find((l) => l.method === req.method && l.url.test(req.url ?? ''));
    if (loss && --loss.times! <= 0) losses.splice(losses.indexOf(loss), 1);
    return loss;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const loss = takeLoss(req);
    const name = `${req.method} ${req.url}`;
    if (loss?.when === 'before the server') {
      lost.push({ request: name, applied: false });
      req.socket.destroy();
      return;
    }
    const forwarded = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (answer) => {
        if (loss) {
          // The server has applied the request; its whole answer is read and dropped with the connection.
          answer.resume();
          answer.on('end', () => {
            lost.push({ request: name, applied: true });
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => req.socket.destroy());
    req.pipe(forwarded);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    lost,
    loseNext(loss) {
      losses.push({ times: 1, ...loss });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
