import { expect } from 'chai';
import { loadConfig } from '../../src/config/load-config.js';
import { freshDirPerTest, writeFiles } from '../helpers.js';

const BASE =
  'datasources:\n  feed: {type: csv, path: feed.csv}\n' +
  'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n' +
  'export_targets:\n  out: {type: console}\n';

describe('settings.state', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  async function load(state: string, env: Record<string, string> = {}) {
    writeFiles(dir, { 'c.yaml': BASE + `settings:\n  state: ${state}\n`, 'feed.csv': 'v\n1\n' });
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      return await loadConfig(`${dir}/c.yaml`);
    } finally {
      process.env = saved;
    }
  }

  async function problems(state: string): Promise<string> {
    return load(state).then(
      () => '',
      (err: Error) => err.message,
    );
  }

  it('accepts PostgreSQL and Redis, with ${VAR} secrets filled in from the environment', async () => {
    const pg = await load('{type: postgresql, url: "postgres://u:${STATE_PW}@db:5432/ops", table: ops.threshold_state}', { STATE_PW: 'x1' });
    expect(pg.settings.state).to.deep.equal({ type: 'postgresql', url: 'postgres://u:x1@db:5432/ops', table: 'ops.threshold_state' });
    const redis = await load('{type: redis, host: cache, password: "${STATE_PW}", key_prefix: "tp:", lock_ttl: 10s}', { STATE_PW: 'x2' });
    expect(redis.settings.state).to.include({ type: 'redis', password: 'x2', key_prefix: 'tp:' });
  });

  it('refuses an unknown type, a key of the other backend, and a table name that is not an identifier', async () => {
    expect(await problems('{type: mongodb}')).to.match(/state\.type/);
    expect(await problems('{type: redis, table: t}')).to.match(/table/);
    expect(await problems('{type: postgresql, key_prefix: "x:"}')).to.match(/key_prefix/);
    expect(await problems('{type: postgresql, table: "t; drop table x"}')).to.match(/table/);
    expect(await problems('{url: "redis://x"}')).to.match(/type/);
  });
});
