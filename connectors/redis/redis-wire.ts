/**
 * The Redis protocol (RESP2) on one socket: commands encoded here, replies read by redis-parser.
 * A batch goes out as one pre-encoded write and its replies come back as one array, without the
 * command object, promise and reply wrapper a client library allocates per command: in hash mode
 * those made garbage collection a third of the write path's time.
 */
import type { Socket } from 'node:net';
import RedisParser from 'redis-parser';

export type CommandArgs = readonly [string, ...(string | number)[]];

/**
 * One command as RESP: an array of bulk strings. A bulk string's length is its UTF-8 byte
 * length, not its JavaScript length (which counts UTF-16 units): a key or value with non-ASCII
 * text would otherwise cut the stream. Lone surrogates are written, and counted, as U+FFFD alike.
 */
export function encodeCommand(args: CommandArgs): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const text = typeof arg === 'string' ? arg : String(arg);
    out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  }
  return out;
}

/** Commands encoded for one write, and the encoding to write them with. */
export interface EncodedBatch {
  readonly text: string;
  readonly encoding: 'latin1' | 'utf8';
}

/**
 * Many commands as one RESP text. Most batches are ASCII, where a string's length is its byte
 * length: they are encoded with lengths alone, and the whole text's UTF-8 byte length checked
 * once. It equals the text's length only if every character is ASCII (any other takes more
 * bytes than units); otherwise the batch is encoded again with each argument's byte length.
 */
export function encodeBatch(commands: readonly CommandArgs[]): EncodedBatch {
  let out = '';
  for (const args of commands) {
    out += `*${args.length}\r\n`;
    for (const arg of args) {
      const text = typeof arg === 'string' ? arg : String(arg);
      out += `$${text.length}\r\n${text}\r\n`;
    }
  }
  if (Buffer.byteLength(out) === out.length) return { text: out, encoding: 'latin1' };
  let exact = '';
  for (const args of commands) exact += encodeCommand(args);
  return { text: exact, encoding: 'utf8' };
}

/** Commands per write: small enough that the server starts early, large enough that writes stay few. */
const WRITE_SLICE = 200;

/** A reply that never came: the connection closed (or was dropped) first. */
export class ConnectionLostError extends Error {
  override name = 'ConnectionLostError';
  readonly code: string;

  constructor(message: string, code = 'CONNECTION_LOST', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The replies of one batch: `replies[i]` is the value or the error reply (an Error named ReplyError) of command i. */
export interface BatchReplies {
  readonly replies: unknown[];
  /** Set when the connection ended before every reply came: the commands past `replies.length` are in doubt. */
  readonly lost?: ConnectionLostError;
}

interface Waiting {
  readonly expected: number;
  readonly replies: unknown[];
  readonly settle: (result: BatchReplies) => void;
}

/**
 * Replies arrive in the order commands were written; each batch waits for its count of them.
 * Nothing is resent: when the socket ends, every batch still waiting settles with the replies it
 * got and `lost`, and the caller decides what to send again.
 */
export class RespSocket {
  readonly #socket: Socket;
  readonly #waiting: Waiting[] = [];
  readonly #parser: RedisParser;
  #lost: ConnectionLostError | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#parser = new RedisParser({
      returnReply: (reply: unknown) => this.reply(reply),
      returnError: (err: Error) => this.reply(err),
      // A stream we cannot read is a stream we cannot trust: end it, and the waiting replies are lost.
      returnFatalError: (err: Error) => this.end(new ConnectionLostError(`unreadable reply from the server (${err.message})`, 'PROTOCOL_ERROR', { cause: err })),
    });
    socket.on('data', (chunk: Buffer) => this.#parser.execute(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.end(new ConnectionLostError(err.message, err.code ?? 'CONNECTION_LOST', { cause: err })));
    socket.on('close', () => this.end(new ConnectionLostError('Connection is closed.')));
  }

  get open(): boolean {
    return this.#lost === undefined;
  }

  /**
   * Writes the commands, without waiting for any reply between them; settles once every reply
   * is in, or the connection ends. They go out in slices as they are encoded, so the server
   * works on the first while the rest are encoded.
   */
  send(commands: readonly CommandArgs[]): Promise<BatchReplies> {
    if (this.#lost) return Promise.resolve({ replies: [], lost: this.#lost });
    return new Promise((settle) => {
      this.#waiting.push({ expected: commands.length, replies: [], settle });
      for (let from = 0; from < commands.length && !this.#lost; from += WRITE_SLICE) {
        const { text, encoding } = encodeBatch(commands.slice(from, from + WRITE_SLICE));
        this.#socket.write(text, encoding);
      }
    });
  }

  /** One command; its error reply, or the lost connection, rejects. */
  async call(args: CommandArgs): Promise<unknown> {
    const { replies, lost } = await this.send([args]);
    if (replies.length === 0) throw lost;
    if (replies[0] instanceof Error) throw replies[0];
    return replies[0];
  }

  /** Ends the connection at once: every batch still waiting settles with what it got. */
  destroy(reason = new ConnectionLostError('Connection is closed.')): void {
    this.end(reason);
  }

  /** Asks the server to close (QUIT) and waits a little for it, then closes anyway. */
  async quit(graceMs: number): Promise<void> {
    if (this.#lost) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.call(['QUIT']).catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.end(new ConnectionLostError('Connection is closed.'));
  }

  private reply(reply: unknown): void {
    const head = this.#waiting[0];
    // A reply nobody waits for means the stream is out of step: no later reply can be trusted.
    if (!head) return this.end(new ConnectionLostError('a reply came that no command asked for', 'PROTOCOL_ERROR'));
    head.replies.push(reply);
    if (head.replies.length === head.expected) {
      this.#waiting.shift();
      head.settle({ replies: head.replies });
    }
  }

  private end(reason: ConnectionLostError): void {
    if (this.#lost) return;
    this.#lost = reason;
    this.#socket.destroy();
    this.#parser.reset();
    for (const waiting of this.#waiting.splice(0)) waiting.settle({ replies: waiting.replies, lost: reason });
  }
}
