import { expect } from 'chai';
import { chooseOutput } from '../../src/cli/run.js';
import { ConnectorError, wrapError } from '../../src/errors.js';
import { createLogger, type LogOptions } from '../../src/log.js';

async function capture(options: LogOptions & { isTTY?: boolean } = {}) {
  const lines: string[] = [];
  const log = await createLogger('debug', { env: {}, ...options, destination: { write: (s: string) => lines.push(s), isTTY: options.isTTY ?? false } });
  return { log, lines };
}

describe('logs', () => {
  it('are JSON lines when stderr is not a terminal', async () => {
    const { log, lines } = await capture();
    log.info({ rule: 'r' }, 'hello');
    expect(JSON.parse(lines[0]!)).to.include({ level: 'info', rule: 'r', msg: 'hello' });
  });

  it('start with the syslog priority under journald, JSON included, so journalctl -p err finds errors', async () => {
    const { log, lines } = await capture({ env: { JOURNAL_STREAM: '8:12345' } });
    log.error('broken');
    log.warn('careful');
    log.info('fine');
    log.debug('detail');
    expect(lines.map((l) => l.slice(0, 3))).to.deep.equal(['<3>', '<4>', '<6>', '<7>']);
    expect(JSON.parse(lines[0]!.slice(3))).to.include({ level: 'error', msg: 'broken' });
    const pretty = await capture({ env: { JOURNAL_STREAM: '8:1' }, format: 'pretty' });
    pretty.log.error('broken');
    expect(pretty.lines[0]).to.match(/^<3>\d\d:\d\d:\d\d\.\d{3} ERROR broken\n$/);
  });

  it('are readable lines on a terminal: time, level, message, then key=value fields; coloured unless NO_COLOR', async () => {
    const { log, lines } = await capture({ isTTY: true, env: { NO_COLOR: '1' } });
    log.warn({ datasource: 'sensors', file: 'a b.csv', rows: 3 }, 'row too short');
    expect(lines[0]).to.match(/^\d\d:\d\d:\d\d\.\d{3} WARN  row too short {2}datasource=sensors file="a b\.csv" rows=3\n$/);
    const coloured = await capture({ isTTY: true });
    coloured.log.error('broken');
    expect(coloured.lines[0]).to.include('\x1b[31mERROR');
    const asked = await capture({ format: 'pretty' });
    asked.log.info('plain');
    expect(asked.lines[0]).not.to.include('\x1b[');
  });

  it('show an error as its message chain, code, causes and details, not an empty object', async () => {
    const socket = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    const err = wrapError('writing batch of 500 to alerts', new ConnectorError('sending to redis', { code: 'ECONNREFUSED', details: { host: '127.0.0.1' }, cause: socket }));
    const { log, lines } = await capture();
    log.error({ target: 'alerts', err }, 'export target failed');
    const line = JSON.parse(lines[0]!);
    expect(line.err.message).to.equal('writing batch of 500 to alerts: sending to redis: connect ECONNREFUSED 127.0.0.1:6379');
    expect(line.err.code).to.equal('ECONNREFUSED');
    expect(line.err.causes).to.deep.equal([
      { message: 'sending to redis', code: 'ECONNREFUSED', details: { host: '127.0.0.1' } },
      { message: 'connect ECONNREFUSED 127.0.0.1:6379', code: 'ECONNREFUSED' },
    ]);
    expect(lines[0]).not.to.include('"stack"');
    const pretty = await capture({ format: 'pretty' });
    pretty.log.error({ err }, 'export target failed');
    expect(pretty.lines[0]).to.include('err.code=ECONNREFUSED').and.to.include('err.causes[1].message="connect ECONNREFUSED 127.0.0.1:6379"');
  });

  it('keep an err that is already a plain object as it is', async () => {
    const { log, lines } = await capture();
    log.error({ err: { message: 'no such file' } }, 'failed');
    expect(JSON.parse(lines[0]!).err).to.deep.equal({ message: 'no such file' });
  });
});

describe('what stderr shows', () => {
  it('silent shows nothing, not even the summary table on a terminal', () => {
    expect(chooseOutput({ isTTY: true, level: 'silent', format: 'auto' })).to.deep.equal({ logFormat: 'pretty', summary: 'none', progress: false });
    expect(chooseOutput({ isTTY: false, level: 'silent', format: 'auto' }).summary).to.equal('none');
  });

  it('a terminal gets readable logs, the table and the progress line; JSON asked for gets neither', () => {
    expect(chooseOutput({ isTTY: true, level: 'info', format: 'auto' })).to.deep.equal({ logFormat: 'pretty', summary: 'table', progress: true });
    expect(chooseOutput({ isTTY: true, level: 'info', format: 'json' })).to.deep.equal({ logFormat: 'json', summary: 'log', progress: false });
    expect(chooseOutput({ isTTY: false, level: 'info', format: 'auto' })).to.deep.equal({ logFormat: 'json', summary: 'log', progress: false });
    // pretty asked for in a pipe: readable, but no line redrawn in place in a file
    expect(chooseOutput({ isTTY: false, level: 'info', format: 'pretty' })).to.deep.equal({ logFormat: 'pretty', summary: 'table', progress: false });
  });
});
