/**
 * The Redis protocol (RESP2) on one socket: commands encoded here, replies read by redis-parser.
 * A batch is encoded into buffers and written back to back, and its replies come back as one
 * array, without the command object, promise and reply wrapper a client library allocates per
 * command: with ioredis, those made garbage collection a third of hash mode's write path.
 */
import type { Socket } from 'node:net';
import RedisParser from 'redis-parser';

export type CommandArgs = readonly [string, ...(string | number)[]];

/**
 * Encodes commands as RESP straight into buffers and hands them on (to the socket) in pieces.
 * Bytes once handed on are never written again: a new buffer is taken when one is full, and
 * what is left of a buffer after a piece serves the next. ASCII text, by far the most common,
 * and short (field names, numbers, most keys), is copied a character at a time, which checks it
 * is ASCII on the way; an argument with any other character is written again from its start
 * with its UTF-8 byte length, since a bulk string's length counts bytes, not UTF-16 units.
 * Longer text goes through Buffer's UTF-8 writer, with its byte length, from the start. Lone
 * surrogates are written, and counted, as U+FFFD, as Buffer does.
 */
export class RespWriter {
  #buffer: Buffer;
  /** Bytes from here to #at are encoded and not yet handed on. */
  #from = 0;
  #at = 0;

  constructor(
    private readonly handOn: (piece: Buffer) => void,
    private readonly slabBytes = 256 * 1024,
  ) {
    this.#buffer = Buffer.allocUnsafe(slabBytes);
  }

  write(args: CommandArgs): void {
    this.room(14);
    this.#buffer[this.#at++] = 0x2a; // '*'
    this.decimal(args.length);
    for (const arg of args) this.bulk(typeof arg === 'string' ? arg : String(arg));
  }

  /** Hands on what is encoded so far. */
  flush(): void {
    if (this.#at === this.#from) return;
    this.handOn(this.#buffer.subarray(this.#from, this.#at));
    this.#from = this.#at;
  }

  private bulk(text: string): void {
    const length = text.length;
    // Header and CR LFs, and at most 3 bytes per UTF-16 unit.
    this.room(16 + 3 * length);
    const buffer = this.#buffer;
    const start = this.#at;
    // Past a few dozen characters, two native calls (byte length, UTF-8 write) beat the loop.
    if (length > NATIVE_FROM) return this.utf8Bulk(text, start);
    buffer[this.#at++] = 0x24; // '$'
    this.decimal(length);
    let at = this.#at;
    for (let i = 0; i < length; i++) {
      const unit = text.charCodeAt(i);
      if (unit >= 0x80) return this.utf8Bulk(text, start);
      buffer[at++] = unit;
    }
    buffer[at++] = 0x0d;
    buffer[at++] = 0x0a;
    this.#at = at;
  }

  private utf8Bulk(text: string, start: number): void {
    this.#at = start;
    this.#buffer[this.#at++] = 0x24;
    this.decimal(Buffer.byteLength(text));
    this.#at += this.#buffer.write(text, this.#at, 'utf8');
    this.#buffer[this.#at++] = 0x0d;
    this.#buffer[this.#at++] = 0x0a;
  }

  /** A non-negative integer and CR LF; room for it is already made. */
  private decimal(n: number): void {
    let digits = 1;
    for (let power = 10; power <= n; power *= 10) digits++;
    let at = this.#at + digits;
    this.#at = at + 2;
    this.#buffer[at] = 0x0d;
    this.#buffer[at + 1] = 0x0a;
    do {
      this.#buffer[--at] = 0x30 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
  }

  /** Makes sure `bytes` more fit: else hands on what is encoded and starts a new buffer. */
  private room(bytes: number): void {
    if (this.#at + bytes <= this.#buffer.length) return;
    this.flush();
    this.#buffer = Buffer.allocUnsafe(Math.max(this.slabBytes, bytes));
    this.#from = 0;
    this.#at = 0;
  }
}

/** Text longer than this is written by Buffer, not copied a character at a time. */
const NATIVE_FROM = 48;

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
  /** Infinity while the commands are still being written. */
  expected: number;
  readonly replies: unknown[];
  settle: (result: BatchReplies) => void;
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
  readonly #writer: RespWriter;
  #lost: ConnectionLostError | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#writer = new RespWriter((piece) => socket.write(piece));
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
    return this.sendEach((write) => {
      for (const args of commands) write(args);
    });
  }

  /**
   * As send, with the commands made by `produce` while the first ones are already on their way:
   * each slice is written as soon as it is encoded, so the server runs it while the caller
   * prepares the next. `produce` runs at once and to its end (no reply is read before it returns),
   * even on a lost connection: its commands are then in doubt, which the caller must learn.
   * Should `produce` throw, what it wrote is still sent and its replies read (the reply stream
   * stays in step for other batches), and the error is rethrown.
   */
  sendEach(produce: (write: (args: CommandArgs) => void) => void): Promise<BatchReplies> {
    const waiting: Waiting = { expected: Infinity, replies: [], settle: () => {} };
    const settled = new Promise<BatchReplies>((settle) => (waiting.settle = settle));
    const lostBefore = this.#lost;
    if (lostBefore) waiting.settle({ replies: [], lost: lostBefore });
    else this.#waiting.push(waiting);
    let count = 0;
    try {
      produce((args) => {
        if (this.#lost) return;
        this.#writer.write(args);
        if (++count % WRITE_SLICE === 0) this.#writer.flush();
      });
    } finally {
      this.#writer.flush();
      if (!lostBefore) this.expect(waiting, count);
    }
    return settled;
  }

  /** The batch's commands are all written: it settles once `count` replies are in (at once, for none). */
  private expect(waiting: Waiting, count: number): void {
    // A connection lost meanwhile has settled every waiting batch already.
    if (this.#lost) return;
    waiting.expected = count;
    if (waiting.replies.length < count) return;
    this.#waiting.splice(this.#waiting.indexOf(waiting), 1);
    waiting.settle({ replies: waiting.replies });
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
    // Not at once: this may run inside the parser's own callback (a reply nobody asked for), and
    // resetting it there pulls the buffer from under the reply it is still reading.
    queueMicrotask(() => this.#parser.reset());
    for (const waiting of this.#waiting.splice(0)) waiting.settle({ replies: waiting.replies, lost: reason });
  }
}
