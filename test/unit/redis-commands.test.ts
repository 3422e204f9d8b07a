import { expect } from 'chai';
import { flatFields, planCommands, PUSH_CHUNK, type CommandOptions, type KeyedRecord } from '../../connectors/redis/redis-commands.js';
import { commandError } from '../../connectors/redis/redis-connection.js';

const base: CommandOptions = { mode: 'hash', ttl: undefined, maxLength: undefined, push: 'right', scriptSha: undefined };
const keyed = (pairs: [string, Record<string, unknown>][]): KeyedRecord[] => pairs.map(([key, record], index) => ({ index, key, record }));

describe('redis target: what a batch becomes', () => {
  it('hash fields: text as is, numbers, booleans, big integers as printed, dates in ISO 8601, objects as JSON, nulls left out', () => {
    expect(flatFields({ a: 'x y', n: 1.5, b: false, big: 12345678901234567890n, d: new Date(Date.UTC(2026, 0, 2)), o: { k: [1, null] }, z: null, u: undefined, e: '' })).to.deep.equal([
      'a', 'x y', 'n', '1.5', 'b', 'false', 'big', '12345678901234567890', 'd', '2026-01-02T00:00:00.000Z', 'o', '{"k":[1,null]}', 'e', '',
    ]);
  });

  it('hash: one HSET per record; a record of nulls only sends nothing', () => {
    const commands = planCommands(keyed([['k1', { a: 1 }], ['k2', { a: null }], ['k3', { b: 'x' }]]), base);
    expect(commands.map((c) => [c.args, c.records])).to.deep.equal([[['HSET', 'k1', 'a', '1'], [0]], [['HSET', 'k3', 'b', 'x'], [2]]]);
  });

  it('list: one push per key in the order read, chunked, each followed by its LTRIM when trimmed', () => {
    const records = keyed([['a', { n: 1 }], ['b', { n: 2 }], ['a', { n: 3 }]]);
    const right = planCommands(records, { ...base, mode: 'list', maxLength: 5 });
    expect(right.map((c) => [c.args, c.records, c.followUp])).to.deep.equal([
      [['RPUSH', 'a', '{"n":1}', '{"n":3}'], [0, 2], ['LTRIM', 'a', -5, -1]],
      [['RPUSH', 'b', '{"n":2}'], [1], ['LTRIM', 'b', -5, -1]],
    ]);
    const left = planCommands(records, { ...base, mode: 'list', push: 'left', maxLength: 5 });
    expect(left[0]!.args[0]).to.equal('LPUSH');
    expect(left[0]!.followUp).to.deep.equal(['LTRIM', 'a', 0, 4]);
    const many = planCommands(keyed(Array.from({ length: PUSH_CHUNK * 2 + 1 }, (_, i) => ['a', { i }] as [string, Record<string, unknown>])), { ...base, mode: 'list' });
    expect(many.map((c) => c.records.length)).to.deep.equal([PUSH_CHUNK, PUSH_CHUNK, 1]);
  });

  it('with a TTL, the write, the trim and the EXPIRE go through the script, which expires only after the write succeeded', () => {
    const [hash] = planCommands(keyed([['k', { a: 1 }]]), { ...base, ttl: 60, scriptSha: 'sha' });
    expect(hash!.args).to.deep.equal(['EVALSHA', 'sha', 1, 'k', 60, '', '', 'HSET', 'a', '1']);
    const [list] = planCommands(keyed([['k', { a: 1 }]]), { ...base, mode: 'list', ttl: 60, maxLength: 3, scriptSha: 'sha' });
    expect(list!.args).to.deep.equal(['EVALSHA', 'sha', 1, 'k', 60, -3, -1, 'RPUSH', '{"a":1}']);
    expect(list!.followUp).to.equal(undefined);
  });

  it('string: one MSET per chunk without a TTL, SET ... EX with one', () => {
    const records = keyed([['k1', { a: 1 }], ['k2', { b: null }]]);
    expect(planCommands(records, { ...base, mode: 'string' }).map((c) => [c.args, c.records])).to.deep.equal([[['MSET', 'k1', '{"a":1}', 'k2', '{"b":null}'], [0, 1]]]);
    expect(planCommands(records, { ...base, mode: 'string', ttl: 9, scriptSha: 'ignored' }).map((c) => c.args)).to.deep.equal([
      ['SET', 'k1', '{"a":1}', 'EX', 9],
      ['SET', 'k2', '{"b":null}', 'EX', 9],
    ]);
  });

  it('stream: XADD with MAXLEN ~ N and Redis\'s own id', () => {
    expect(planCommands(keyed([['s', { a: 1, b: null }]]), { ...base, mode: 'stream', maxLength: 100 })[0]!.args).to.deep.equal(['XADD', 's', 'MAXLEN', '~', 100, '*', 'a', '1']);
    expect(planCommands(keyed([['s', { a: 1 }]]), { ...base, mode: 'stream' })[0]!.args).to.deep.equal(['XADD', 's', '*', 'a', '1']);
  });
});

describe('redis target: what an error reply means for the write', () => {
  const endpoint = { host: '127.0.0.1', port: 6379, db: 0, tls: false, label: '127.0.0.1:6379/0' };
  const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

  it('busy, loading or full (OOM under maxmemory) may pass: retried; a key of another type or a refused command will not', () => {
    for (const message of ['LOADING Redis is loading the dataset in memory', 'BUSY Redis is busy running a script', "OOM command not allowed when used memory > 'maxmemory'."]) {
      expect(commandError(reply(message), endpoint).retryable, message).to.equal(true);
    }
    for (const message of ['WRONGTYPE Operation against a key holding the wrong kind of value', 'NOPERM this user has no permissions to access one of the keys']) {
      expect(commandError(reply(message), endpoint).retryable, message).to.equal(false);
    }
  });
});
