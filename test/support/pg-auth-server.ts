import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';

/**
 * A server that speaks PostgreSQL's wire protocol as far as authentication: it asks for a
 * cleartext password and refuses it with SQLSTATE 28P01, as a PostgreSQL whose pg_hba.conf
 * wants a password does. The test machine's real PostgreSQL trusts every connection, so a wrong
 * password can only be met here. It keeps the passwords it was sent, so a test can show the
 * password really went to the server while never appearing in the output.
 */
export interface PgAuthServer {
  readonly port: number;
  readonly passwords: string[];
  /** For each password received: whether it came over TLS. */
  readonly overTls: boolean[];
  stop(): Promise<void>;
}

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function errorResponse(user: string): Buffer {
  const field = (code: string, text: string) => Buffer.from(`${code}${text}\0`, 'utf8');
  return message(
    'E',
    Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', '28P01'), field('M', `password authentication failed for user "${user}"`), Buffer.from([0])]),
  );
}

/** The 8-byte SSLRequest a client sends before its startup message when it wants TLS. */
const SSL_REQUEST_CODE = 80877103;

/**
 * With `tls` (a PEM key and certificate), a client's SSLRequest is answered "S" and the
 * conversation goes on over TLS, as PostgreSQL with ssl = on does; without, it is answered "N".
 */
export async function startPgAuthServer(options: { tls?: { key: string; cert: string } } = {}): Promise<PgAuthServer> {
  const passwords: string[] = [];
  const overTls: boolean[] = [];
  const sockets = new Set<Socket>();

  /** Startup, the password prompt, and the refusal, on a plain or a TLS stream. */
  const converse = (stream: Socket, secure: boolean, first: Buffer = Buffer.alloc(0)) => {
    let buffered = first;
    let user = '';
    let started = false;
    let sslAnswered = false;
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (!started) {
          // The startup message: length, protocol version, then key\0value\0 pairs.
          if (buffered.length < 8) return;
          const length = buffered.readInt32BE(0);
          if (!secure && !sslAnswered && length === 8 && buffered.readInt32BE(4) === SSL_REQUEST_CODE) {
            sslAnswered = true;
            buffered = buffered.subarray(8);
            if (!options.tls) {
              stream.write('N');
              continue;
            }
            stream.off('data', onData);
            stream.write('S', () => {
              const upgraded = new TLSSocket(stream, { isServer: true, key: options.tls!.key, cert: options.tls!.cert });
              upgraded.on('error', () => {});
              converse(upgraded, true, buffered);
            });
            return;
          }
          if (buffered.length < length) return;
          const pairs = buffered.subarray(8, length).toString('utf8').split('\0');
          for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i] === 'user') user = pairs[i + 1]!;
          buffered = buffered.subarray(length);
          started = true;
          const ask = Buffer.alloc(4);
          ask.writeInt32BE(3); // AuthenticationCleartextPassword
          stream.write(message('R', ask));
          continue;
        }
        if (buffered.length < 5) return;
        const length = buffered.readInt32BE(1);
        if (buffered.length < length + 1) return;
        const type = String.fromCharCode(buffered[0]!);
        const body = buffered.subarray(5, length + 1);
        buffered = buffered.subarray(length + 1);
        if (type === 'p') {
          passwords.push(body.toString('utf8').replace(/\0$/, ''));
          overTls.push(secure);
          stream.end(errorResponse(user));
          return;
        }
      }
    };
    stream.on('data', onData);
    if (first.length > 0) onData(Buffer.alloc(0));
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    converse(socket, false);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    passwords,
    overTls,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
