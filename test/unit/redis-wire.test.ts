import { expect } from 'chai';
import fc from 'fast-check';
import RedisParser from 'redis-parser';
import { encodeBatch, encodeCommand, type CommandArgs } from '../../connectors/redis/redis-wire.js';

/** What a server reads from the bytes: RESP commands are arrays of bulk strings, which redis-parser reads too. */
function decode(bytes: Buffer): unknown[] {
  const out: unknown[] = [];
  const parser = new RedisParser({ returnReply: (r: unknown) => out.push(r), returnError: (e: Error) => out.push(e) });
  parser.execute(bytes);
  return out;
}

const bytesOf = (batch: { text: string; encoding: BufferEncoding }) => Buffer.from(batch.text, batch.encoding);

describe('redis target: commands as RESP', () => {
  it('bulk string lengths are UTF-8 byte lengths, not string lengths', () => {
    expect(encodeCommand(['SET', 'k', 'é'])).to.equal('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
    expect(encodeCommand(['SET', '😀', 'Жж'])).to.equal('*3\r\n$3\r\nSET\r\n$4\r\n😀\r\n$4\r\nЖж\r\n');
    expect(encodeCommand(['EXPIRE', 'k', 60])).to.equal('*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n60\r\n');
  });

  it('a batch of ASCII is written as latin1 with string lengths; one non-ASCII character anywhere makes the whole batch UTF-8 with byte lengths', () => {
    const ascii = encodeBatch([['HSET', 'k', 'a', 'x\r\ny'], ['PING']]);
    expect(ascii).to.deep.equal({ text: '*4\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\na\r\n$4\r\nx\r\ny\r\n*1\r\n$4\r\nPING\r\n', encoding: 'latin1' });
    // 'é' is one unit in a one-byte (Latin-1) string but two bytes in UTF-8: the trap of writing a one-byte string as latin1.
    const latin1Char = encodeBatch([['HSET', 'k', 'a', 'x'], ['HSET', 'k2', 'a', 'café']]);
    expect(latin1Char.encoding).to.equal('utf8');
    expect(decode(bytesOf(latin1Char))).to.deep.equal([['HSET', 'k', 'a', 'x'], ['HSET', 'k2', 'a', 'café']]);
  });

  it('a lone surrogate is sent as U+FFFD, and counted as its three bytes', () => {
    const batch = encodeBatch([['SET', 'k', 'a\uD800b']]);
    expect(decode(bytesOf(batch))).to.deep.equal([['SET', 'k', 'a\uFFFDb']]);
  });

  it('any text, CR LF and RESP-looking text included, reads back as the same arguments', () => {
    const arg = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('\r\n', '$3\r\nfoo\r\n', '*2\r\n', '', '-ERR x\r\n'), fc.integer());
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('HSET', 'RPUSH'), fc.array(arg, { maxLength: 6 })), { minLength: 1, maxLength: 8 }), (commands) => {
        const args = commands.map(([name, rest]) => [name, ...rest] as CommandArgs);
        expect(decode(bytesOf(encodeBatch(args)))).to.deep.equal(args.map((a) => a.map(String)));
      }),
      { numRuns: 300 },
    );
  });
});
