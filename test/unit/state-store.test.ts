import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { MAX_CYCLE_KEYS_PER_RULE, MAX_DEDUP_KEYS_PER_RULE, RuleDedup, type DedupTable } from '../../src/state/dedup.js';
import { dedupKeyOf, digest } from '../../src/state/record-key.js';
import { fromSpooled, toSpooled } from '../../src/state/spool.js';
import { StateKeeper } from '../../src/state/state-keeper.js';
import { applyDedup, DamagedStateError } from '../../src/state/state-documents.js';
import { emptyState, StateInUseError, StateStore } from '../../src/state/state-store.js';
import { WATERMARK_LIST_WARNING, WatermarkFilter } from '../../src/state/watermark.js';
import { freshDirPerTest } from '../helpers.js';

const layout = new ColumnLayout(['id', 'at', 'v']);

describe('watermarks', () => {
  it('skips records at or below the watermark, except new records at exactly it', () => {
    const first = new WatermarkFilter('at', undefined);
    const kept = first.filter(layout, [['1', '2026-01-01T00:00:00Z', '5'], ['2', '2026-01-01T00:01:00Z', '6']]);
    expect(kept).to.have.length(2);
    const mark = first.next()!;
    expect(mark).to.include({ field: 'at', value: '2026-01-01T00:01:00Z' });
    expect(mark.atValue).to.have.length(1);

    const second = new WatermarkFilter('at', mark);
    const rows = [
      ['1', '2026-01-01T00:00:00Z', '5'], // older: skipped
      ['2', '2026-01-01T00:01:00Z', '6'], // the record at the watermark: skipped
      ['3', '2026-01-01T00:01:00Z', '7'], // same time, new record: kept
      ['4', '2026-01-01T00:00:30Z', '8'], // older, arrived late: skipped (documented)
    ];
    expect(second.filter(layout, rows).map((r) => (r as string[])[0])).to.deep.equal(['3']);
    expect(second.skipped).to.equal(3);
    // Both records at the boundary are remembered, so neither comes back.
    expect(second.next()!.atValue).to.have.length(2);
    const third = new WatermarkFilter('at', second.next());
    expect(third.filter(layout, rows)).to.deep.equal([]);
  });

  it('compares numbers as numbers, and keeps records without a value (they are never silently dropped)', () => {
    const f = new WatermarkFilter('n', { field: 'n', value: 9, atValue: [] });
    const kept = f.filter(OBJECT_LAYOUT, [{ n: 10 }, { n: '9.5' }, { n: 8 }, { n: null }, {}]);
    expect(kept).to.deep.equal([{ n: 10 }, { n: '9.5' }, { n: null }, {}]);
    expect(f.unordered).to.equal(2);
    expect(f.next()).to.include({ value: 10 });
  });

  it('many records at one value: each is listed, so the next cycle skips exactly them (copies take one place)', () => {
    const count = WATERMARK_LIST_WARNING + 2_500;
    const rows = Array.from({ length: count }, (_, id) => ({ id, day: '2026-12-03' }));
    const first = new WatermarkFilter('day', undefined);
    expect(first.filter(OBJECT_LAYOUT, [{ id: -1, day: '2026-12-02' }, ...rows, ...rows.slice(0, 10)])).to.have.length(count + 11);
    const mark = first.next()!;
    expect(mark.value).to.equal('2026-12-03');
    expect(mark.atValue).to.have.length(count);
    const second = new WatermarkFilter('day', mark);
    const again = second.filter(OBJECT_LAYOUT, [...rows, { id: 'new', day: '2026-12-03' }]);
    expect(again).to.deep.equal([{ id: 'new', day: '2026-12-03' }]);
    expect(second.skipped).to.equal(count);
    expect(second.next()!.atValue).to.have.length(count + 1);
    // A later value starts a fresh list.
    const third = new WatermarkFilter('day', second.next());
    third.filter(OBJECT_LAYOUT, [{ id: 1, day: '2026-12-04' }]);
    expect(third.next()).to.deep.include({ value: '2026-12-04', atValue: third.next()!.atValue });
    expect(third.next()!.atValue).to.have.length(1);
  });

  it('a watermark of another field (the config changed) is not used', () => {
    const f = new WatermarkFilter('b', { field: 'a', value: 100, atValue: [] });
    expect(f.filter(OBJECT_LAYOUT, [{ b: 1 }])).to.have.length(1);
  });
});

describe('dedup memory', () => {
  const rows = [{ id: 1, v: 5 }, { id: 2, v: 6 }];

  it('without realert: suppressed while matching, forgotten after a complete cycle without a match', () => {
    const table: DedupTable = new Map();
    const c1 = new RuleDedup({}, table, 1000);
    expect(c1.filter('d', OBJECT_LAYOUT, [...rows, { id: 1, v: 5 }])).to.have.length(2); // the repeat within the cycle too
    c1.sweep(true);
    const c2 = new RuleDedup({}, table, 2000);
    expect(c2.filter('d', OBJECT_LAYOUT, [rows[0]])).to.deep.equal([]);
    c2.sweep(true); // id 2 did not match: forgotten
    expect(table.size).to.equal(1);
    const c3 = new RuleDedup({}, table, 3000);
    expect(c3.filter('d', OBJECT_LAYOUT, rows)).to.deep.equal([rows[1]]);
  });

  it('an incomplete cycle (a datasource failed) forgets nothing', () => {
    const table: DedupTable = new Map();
    const first = new RuleDedup({}, table, 1000);
    first.filter('d', OBJECT_LAYOUT, rows);
    first.sweep(true);
    new RuleDedup({}, table, 2000).sweep(false);
    expect(table.size).to.equal(2);
  });

  it('dedup_key picks the fields; "42" and 42 are the same key; realert expires entries', () => {
    const table: DedupTable = new Map();
    const policy = { fields: ['id'], realertMs: 1000 };
    // Each cycle ends with its sweep, as the service does: the cycle's keys join the table there.
    const cycle = (now: number, row: Record<string, unknown>) => {
      const dedup = new RuleDedup(policy, table, now);
      const kept = dedup.filter('d', OBJECT_LAYOUT, [row]);
      dedup.sweep(true);
      return kept;
    };
    expect(cycle(0, { id: 42, v: 1 })).to.have.length(1);
    expect(cycle(500, { id: '42', v: 2 })).to.have.length(0);
    expect(cycle(1000, { id: 42, v: 3 })).to.have.length(1);
    const late = new RuleDedup(policy, table, 5000);
    late.sweep(true);
    expect(table.size).to.equal(0);
  });

  it('realert 0s never suppresses; memory is capped per rule, oldest first', () => {
    expect(new RuleDedup({ realertMs: 0 }, new Map(), 0).filter('d', OBJECT_LAYOUT, [rows[0], rows[0]])).to.have.length(2);
    const table: DedupTable = new Map();
    for (let i = 0; i < MAX_DEDUP_KEYS_PER_RULE + 10; i++) table.set(`k${i}`, { seen: i, exported: i });
    new RuleDedup({ realertMs: 10 ** 12 }, table, 10).sweep(true);
    expect(table.size).to.equal(MAX_DEDUP_KEYS_PER_RULE);
    expect(table.has('k0')).to.equal(false);
    expect(table.has(`k${MAX_DEDUP_KEYS_PER_RULE + 9}`)).to.equal(true);
  });
});

describe('dedup memory: bounded within a cycle, keys unchanged', () => {
  it('repeats within one cycle are exported once, for as many distinct keys as a cycle holds (here 180,000, past the remembered cap)', () => {
    const table: DedupTable = new Map();
    const dedup = new RuleDedup({ fields: ['id'] }, table, 1);
    const ids = Array.from({ length: 180_000 }, (_, id) => ({ id }));
    let exported = 0;
    for (let pass = 0; pass < 2; pass++) for (let i = 0; i < ids.length; i += 2_000) exported += dedup.filter('d', OBJECT_LAYOUT, ids.slice(i, i + 2_000)).length;
    expect(exported).to.equal(180_000);
    expect(dedup.suppressed).to.equal(180_000);
    dedup.sweep(true);
    expect(table.size).to.equal(MAX_DEDUP_KEYS_PER_RULE);
  });

  it('a cycle matching more distinct records than it holds stays bounded, and remembers the cap\'s worth of the newest', () => {
    const table: DedupTable = new Map();
    const dedup = new RuleDedup({ fields: ['id'] }, table, 1);
    const total = MAX_CYCLE_KEYS_PER_RULE + 200_000;
    let largest = 0;
    let exported = 0;
    for (let start = 0; start < total; start += 2_000) {
      exported += dedup.filter('d', OBJECT_LAYOUT, Array.from({ length: 2_000 }, (_, i) => ({ id: start + i }))).length;
      // The cycle's keys are not in the table until the sweep: measure what the rule holds.
      largest = Math.max(largest, dedup.heldKeys);
    }
    expect(exported, 'every distinct record is exported once').to.equal(total);
    expect(largest).to.be.above(MAX_DEDUP_KEYS_PER_RULE);
    expect(largest).to.be.at.most(MAX_DEDUP_KEYS_PER_RULE + MAX_CYCLE_KEYS_PER_RULE);
    dedup.sweep(true);
    expect(table.size).to.equal(MAX_DEDUP_KEYS_PER_RULE);
    expect(dedup.overflowed, 'the keys forgotten for the cap are counted').to.equal(total - MAX_DEDUP_KEYS_PER_RULE);
    // The newest keys are the ones kept: the last record is still suppressed, the first alerts again.
    const next = new RuleDedup({ fields: ['id'] }, table, 2);
    expect(next.filter('d', OBJECT_LAYOUT, [{ id: total - 1 }, { id: 0 }])).to.deep.equal([{ id: 0 }]);
    expect(next.overflowed).to.equal(0);
  });

  it('a rule matching a little more than the cap every cycle keeps suppressing the cap\'s worth (the remembered keys still to come are not the ones forgotten)', () => {
    const table: DedupTable = new Map();
    const records = Array.from({ length: MAX_DEDUP_KEYS_PER_RULE + 30_000 }, (_, id) => ({ id }));
    for (const [now, expected] of [[1, records.length], [2, 30_000], [3, 30_000]] as const) {
      const dedup = new RuleDedup({ fields: ['id'] }, table, now);
      let exported = 0;
      for (let i = 0; i < records.length; i += 2_000) exported += dedup.filter('d', OBJECT_LAYOUT, records.slice(i, i + 2_000)).length;
      dedup.sweep(true);
      expect(exported, `cycle ${now}`).to.equal(expected);
      expect(table.size).to.equal(MAX_DEDUP_KEYS_PER_RULE);
    }
  });

  it('a cycle within the cap forgets nothing for it', () => {
    const table: DedupTable = new Map();
    const dedup = new RuleDedup({}, table, 1);
    dedup.filter('d', OBJECT_LAYOUT, Array.from({ length: 1_000 }, (_, id) => ({ id })));
    dedup.sweep(true);
    expect(dedup.overflowed).to.equal(0);
    expect(table.size).to.equal(1_000);
  });

  it('keys are the SHA-256 of the JSON the state has always used, BigInts as digits, so dedup.json written before still suppresses', () => {
    const before = (values: unknown) =>
      createHash('sha256')
        .update(JSON.stringify(values, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))
        .digest('base64url')
        .slice(0, 16);
    const samples: unknown[] = [
      ['feed', { id: '1', v: 50, at: new Date(0), note: 'é\u2028"\\', nested: { a: [1, null] }, gone: undefined }],
      ['feed', { big: 12345678901234567890n, inner: { list: [1n, -2n] } }],
      ['feed', ['42', null, 'x']],
    ];
    for (const values of samples) expect(digest(values), JSON.stringify(values, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))).to.equal(before(values));
    const layout = new ColumnLayout(['id', 'v']);
    const keyOf = dedupKeyOf(undefined, 'feed', layout);
    expect(keyOf(['1', '50'])).to.equal(before(['feed', { id: '1', v: '50' }]));
  });
});

describe('dedup memory: order, clocks and damaged documents', () => {
  it('a key still matching moves to the end, so past the cap the keys that stopped matching go first', () => {
    const table: DedupTable = new Map();
    const policy = { fields: ['id'], realertMs: 3_600_000 };
    const first = new RuleDedup(policy, table, 1);
    first.filter('d', OBJECT_LAYOUT, Array.from({ length: MAX_DEDUP_KEYS_PER_RULE }, (_, id) => ({ id })));
    first.sweep(true);
    const [key0, key1] = [...table.keys()];
    const second = new RuleDedup(policy, table, 2);
    expect(second.filter('d', OBJECT_LAYOUT, [{ id: 0 }, { id: 'new' }])).to.deep.equal([{ id: 'new' }]);
    second.sweep(true);
    expect(table.size).to.equal(MAX_DEDUP_KEYS_PER_RULE);
    expect(table.has(key0!), 'the key still matching is kept').to.equal(true);
    expect(table.has(key1!), 'the oldest key not seen again goes').to.equal(false);
    // the next cycle: id 0 still matching stays suppressed within realert
    expect(new RuleDedup(policy, table, 3).filter('d', OBJECT_LAYOUT, [{ id: 0 }])).to.deep.equal([]);
  });

  it('times ahead of now (written while the clock ran ahead) are read as now, so the key can be forgotten and alert again', () => {
    const state = emptyState();
    applyDedup(state, { rules: { hot: { a: [10_000, 10_000] } } }, 'dedup.json', 1_000);
    expect(state.dedup.get('hot')!.get('a')).to.deep.equal({ seen: 1_000, exported: 1_000 });
    const table = state.dedup.get('hot')!;
    const next = new RuleDedup({}, table, 2_000);
    next.sweep(true); // a complete cycle without a match
    expect(table.size).to.equal(0);
  });

  it('a dedup document of the wrong shape is refused with its place, not a TypeError', () => {
    for (const doc of [{ rules: { hot: null } }, { rules: 5 }, { rules: { hot: { a: 'x' } } }]) {
      expect(() => applyDedup(emptyState(), doc as Record<string, unknown>, '/srv/state/dedup.json'), JSON.stringify(doc))
        .to.throw(DamagedStateError, /^\/srv\/state\/dedup\.json: .* is not what this version writes/);
    }
  });
});

describe('state store', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('round-trips watermarks, dedup keys and the spool through its files, leaving no temp file', async () => {
    const keeper = await StateKeeper.open(dir);
    const work = keeper.begin();
    work.watermarks.set('feed', { field: 'at', value: '2026-01-01', atValue: ['x'] });
    work.dedup.set('hot', new Map([['k', { seen: 1, exported: 1 }]]));
    const batch = { rule: 'hot', datasource: 'feed', runId: 'r1', matchedAt: '2026-01-01T00:00:00Z', layout, rows: [['1', 'a', '5']] };
    work.spool.set('out/x', [toSpooled(batch)]);
    await keeper.commit(work);
    expect(readdirSync(path.join(dir, 'spool'))).to.deep.equal(['out%2Fx.ndjson']);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);

    const again = await StateKeeper.open(dir);
    expect(again.state.watermarks.get('feed')).to.deep.equal({ field: 'at', value: '2026-01-01', atValue: ['x'] });
    expect(again.state.dedup.get('hot')!.get('k')).to.deep.equal({ seen: 1, exported: 1 });
    const replayed = fromSpooled(again.state.spool.get('out/x')![0]!);
    expect(replayed).to.include({ rule: 'hot', datasource: 'feed', runId: 'r1' });
    expect(replayed.rows).to.deep.equal([{ id: '1', at: 'a', v: '5' }]);
    expect(again.spoolSizes()).to.deep.equal(new Map([['out/x', 1]]));

    // Delivered: the spool file goes.
    const empty = again.begin();
    empty.spool.set('out/x', []);
    empty.spool.delete('out/x');
    await again.commit(empty);
    expect(readdirSync(path.join(dir, 'spool'))).to.deep.equal([]);
  });

  it('a damaged state file is reported with its path and what to do', async () => {
    await new StateStore(dir).open();
    writeFileSync(path.join(dir, 'dedup.json'), '{"format":1,');
    let message = '';
    await StateKeeper.open(dir).catch((err: Error) => (message = err.message));
    expect(message).to.contain(path.join(dir, 'dedup.json'));
    expect(message).to.contain('restore it or remove it');
    writeFileSync(path.join(dir, 'dedup.json'), '{}');
    writeFileSync(path.join(dir, 'spool', 'x.ndjson'), '{"rule":"a","datasource":"b","records":[]}\nnot json\n');
    await StateKeeper.open(dir).catch((err: Error) => (message = err.message));
    expect(message).to.match(/x\.ndjson:2: not a JSON line/);
    expect(readFileSync(path.join(dir, 'spool', 'x.ndjson'), 'utf8')).to.contain('not json');
  });
});

describe('state folder lock', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));
  const storeModule = new URL('../../src/state/state-store.js', import.meta.url).href;

  it('a lock naming a running process that started at another time (a reused pid) is stale and taken over; the real holder is refused', async () => {
    const other = spawn('sleep', ['30']);
    try {
      await new Promise((resolve) => other.once('spawn', resolve));
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'lock'), `${other.pid} 1\n`);
      const store = new StateStore(dir);
      await store.open();
      expect(readFileSync(path.join(dir, 'lock'), 'utf8').split(' ')[0]).to.equal(String(process.pid));
      await store.close();
      const start = readFileSync(`/proc/${other.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      writeFileSync(path.join(dir, 'lock'), `${other.pid} ${start}\n`);
      const err = await new StateStore(dir).open().then(() => undefined, (e: Error) => e);
      expect(err).to.be.instanceOf(StateInUseError);
    } finally {
      other.kill();
    }
  });

  it('two processes starting together on a stale lock: exactly one takes the folder, every time', async () => {
    const script = `
      const { StateStore } = await import(${JSON.stringify(storeModule)});
      const store = new StateStore(process.argv[1]);
      try { await store.open(); process.stdout.write('took'); await new Promise((r) => setTimeout(r, 1200)); await store.close(); }
      catch (err) { process.stdout.write(err.name); }`;
    for (let round = 0; round < 6; round++) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'lock'), '999999 1\n');
      const outcomes = await Promise.all(
        [0, 1].map(
          () =>
            new Promise<string>((resolve) => {
              const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir]);
              let out = '';
              child.stdout.on('data', (d) => (out += d));
              child.on('close', () => resolve(out));
            }),
        ),
      );
      expect(outcomes.sort(), `round ${round}`).to.deep.equal(['StateInUseError', 'took']);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
