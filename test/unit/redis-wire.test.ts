import { expect } from 'chai';
import fc from 'fast-check';
import RedisParser from 'redis-parser';
import { RespWriter, type CommandArgs } from '../../connectors/redis/redis-wire.js';

/** What a server reads from the bytes: RESP commands are arrays of bulk strings, which redis-parser reads too. */
function decode(bytes: Buffer): unknown[] {
  const out: unknown[] = [];
  const parser = new RedisParser({ returnReply: (r: unknown) => out.push(r), returnError: (e: Error) => out.push(e) });
  parser.execute(bytes);
  return out;
}

/** The bytes the writer hands on for the commands, and the pieces they came in. */
function encode(commands: readonly CommandArgs[], slabBytes?: number): { bytes: Buffer; pieces: Buffer[] } {
  const pieces: Buffer[] = [];
  const writer = new RespWriter((piece) => pieces.push(Buffer.from(piece)), slabBytes);
  for (const command of commands) writer.write(command);
  writer.flush();
  return { bytes: Buffer.concat(pieces), pieces };
}

const text = (commands: readonly CommandArgs[]) => encode(commands).bytes.toString('utf8');

describe('redis target: commands as RESP', () => {
  it('bulk string lengths are UTF-8 byte lengths, not string lengths', () => {
    expect(text([['HSET', 'k', 'a', 'x\r\ny'], ['PING']])).to.equal('*4\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\na\r\n$4\r\nx\r\ny\r\n*1\r\n$4\r\nPING\r\n');
    // 'é' is one unit of a one-byte (Latin-1) string but two bytes in UTF-8.
    expect(text([['SET', 'k', 'é']])).to.equal('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
    expect(text([['SET', '😀', 'Жж']])).to.equal('*3\r\n$3\r\nSET\r\n$4\r\n😀\r\n$4\r\nЖж\r\n');
    expect(text([['EXPIRE', 'k', 60], ['X', 1234567890]])).to.equal('*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n60\r\n*2\r\n$1\r\nX\r\n$10\r\n1234567890\r\n');
  });

  it('lengths of 9, 10, 99, 100, 999 and 1000 bytes get their digits right', () => {
    for (const n of [9, 10, 99, 100, 999, 1000, 10_000]) {
      expect(text([['SET', 'k', 'a'.repeat(n)]])).to.equal(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${n}\r\n${'a'.repeat(n)}\r\n`);
      expect(decode(encode([['SET', 'k', 'é'.repeat(n)]]).bytes)).to.deep.equal([['SET', 'k', 'é'.repeat(n)]]);
    }
  });

  it('a lone surrogate is sent as U+FFFD, and counted as its three bytes', () => {
    expect(decode(encode([['SET', 'k', 'a\uD800b']]).bytes)).to.deep.equal([['SET', 'k', 'a\uFFFDb']]);
  });

  it('an argument larger than a buffer gets a buffer of its own; bytes handed on are never written again', () => {
    const big = 'x'.repeat(1000) + 'é';
    const { bytes, pieces } = encode([['SET', 'a', 'b'], ['SET', 'k', big], ['SET', 'c', 'd']], 64);
    expect(pieces.length).to.be.greaterThan(1);
    expect(decode(bytes)).to.deep.equal([['SET', 'a', 'b'], ['SET', 'k', big], ['SET', 'c', 'd']]);
  });

  it('any text, CR LF and RESP-looking text included, reads back as the same arguments, whatever the buffer size', () => {
    const arg = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-ascii' }), fc.constantFrom('\r\n', '$3\r\nfoo\r\n', '*2\r\n', '', '-ERR x\r\n'), fc.nat());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('HSET', 'RPUSH'), fc.array(arg, { maxLength: 6 })), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(16, 40, 1024, undefined),
        (commands, slab) => {
          const args = commands.map(([name, rest]) => [name, ...rest] as CommandArgs);
          const handedOn: Buffer[] = [];
          // The pieces as handed on (not copied): any later write into them would show here.
          const writer = new RespWriter((piece) => handedOn.push(piece), slab);
          for (const command of args) writer.write(command);
          writer.flush();
          expect(decode(Buffer.concat(handedOn))).to.deep.equal(args.map((a) => a.map(String)));
        },
      ),
      { numRuns: 400 },
    );
  });
});
