import { expect } from 'chai';
import { serverTimestampMillis } from '../../connectors/postgres/postgres-types.js';
import { toEpochMillis } from '../../src/rules/coerce.js';
import { postgresSource } from '../../connectors/postgres/postgres-source.js';
import { memoryLogger } from '../helpers.js';
import { freshSchemaPerTest, sql, TEST_DATABASE_URL, uniqueName, withClient } from '../support/postgres-db.js';

describe('postgresql timestamp text, read as the server means it', () => {
  for (const zone of ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Europe/Amsterdam', 'Pacific/Chatham']) {
    it(`timestamptz in session zone ${zone} gives the server's own epoch, to the millisecond`, async () => {
      await withClient(async (client) => {
        await client.query(`SET TimeZone = '${zone}'`);
        // Random instants from 1800 (offsets with seconds, local mean time) to 2200, with microseconds.
        const { rows } = await client.query<{ text: string; ms: string }>(
          `SELECT t::text AS text, floor(extract(epoch FROM t) * 1000)::bigint::text AS ms
             FROM (SELECT timestamptz '1800-01-01 00:00:00+00' + random() * interval '400 years' AS t FROM generate_series(1, 2000)) s
           UNION ALL SELECT '2026-11-24 08:00:00+00'::timestamptz::text, '1795507200000'`,
        );
        for (const row of rows) expect(serverTimestampMillis(row.text), row.text).to.equal(Number(row.ms));
      });
    });
  }

  it('a zone-less timestamp is read as UTC, as every rule reads one', async () => {
    await withClient(async (client) => {
      const { rows } = await client.query<{ text: string }>(`SELECT (timestamp '2026-02-28 23:59:59.999' + g * interval '1 day 1 hour')::text AS text FROM generate_series(0, 400) g`);
      for (const row of rows) expect(serverTimestampMillis(row.text), row.text).to.equal(toEpochMillis(row.text));
    });
  });

  it('leaves what it does not know to the general reader', () => {
    for (const text of ['infinity', '-infinity', '2026-11-24 08:00:00 BC', '2026-11-24T08:00:00Z', '24.11.2026']) expect(serverTimestampMillis(text), text).to.equal(undefined);
  });
});

describe('postgresql datasource: the COPY path and the cursor path read the same values', function () {
  this.timeout(30_000);
  let schema: string;
  freshSchemaPerTest((s) => (schema = s));

  async function readAll(query: string, params?: unknown[]) {
    const source = await postgresSource.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, query, ...(params ? { params: params as (string | number)[] } : {}) },
      { name: 'db', configDir: process.cwd(), log: memoryLogger().log, signal: new AbortController().signal },
    );
    const rows: unknown[] = [];
    let fields: unknown;
    for await (const batch of source.read({ signal: new AbortController().signal, batchSize: 7, log: memoryLogger().log })) {
      rows.push(...batch.rows);
      fields = batch.fields;
    }
    await source.close!();
    return { rows, fields };
  }

  it('every type, hostile text, nulls and arrays come out identical, whichever way the rows travel', async () => {
    await sql(`CREATE TABLE "${schema}".t (
      id int, big bigint, amount numeric, f float8, ok boolean, label text, seen timestamptz, naive timestamp, day date,
      doc jsonb, doc2 json, tags text[], nums numeric[], stamps timestamptz[], blob bytea, span interval, uid uuid, "odd	name" text)`);
    const texts = ['plain', 'tab\there', 'line\nbreak\r\n', 'back\\slash \\N \\t', '\\N', 'é✓ 日本 😀', "quote's \"double\"", '', ' lead and trail '];
    for (let i = 0; i < texts.length * 3; i++) {
      const text = texts[i % texts.length]!;
      await sql(
        `INSERT INTO "${schema}".t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
        [
          i, i % 2 ? '9223372036854775807' : null, i % 3 ? '12345678901234567890.123456789' : 'NaN', i % 4 ? 1.5 : 'Infinity', i % 2 === 0,
          text, i % 5 ? '2026-11-24 08:00:00.123456+05:30' : 'infinity', '2026-02-28 23:59:59.999999', '2026-11-24',
          JSON.stringify({ text, n: i, nested: { list: [1, null, text] } }), `{"a": ${i}}`, [text, null, 'x,y', '{}'], ['1.10', null], ['2026-11-24 08:00:00+00', null],
          Buffer.from([0, 9, 10, 92, 255]), '1 day 02:03:04', '6f1c1a63-5b4f-4f8e-9a59-8a4a1d2f3b70', i % 2 ? text : null,
        ],
      );
    }
    const query = `SELECT * FROM "${schema}".t ORDER BY id`;
    const viaCopy = await readAll(query + ';  ');
    const viaCursor = await readAll(`SELECT * FROM "${schema}".t WHERE $1::int = 1 ORDER BY id`, [1]);
    expect(viaCopy.rows).to.have.lengthOf(texts.length * 3);
    expect(viaCopy.fields).to.deep.equal(viaCursor.fields);
    expect(viaCopy.rows).to.deep.equal(viaCursor.rows);
    const first = viaCopy.rows[1] as unknown[];
    expect(first[5]).to.equal('tab\there');
    expect(first[9]).to.deep.equal({ text: 'tab\there', n: 1, nested: { list: [1, null, 'tab\there'] } });
    expect(first[11]).to.deep.equal(['tab\there', null, 'x,y', '{}']);
    // the server's own text, which a column of the same type takes back (pg would make a Buffer and an object)
    expect(first[14]).to.equal('\\x00090a5cff');
    expect(first[15]).to.equal('1 day 02:03:04');
  });

  it('one row with a 20 MB text value full of tabs, backslashes, line breaks and unicode comes back exactly through COPY', async () => {
    const pattern = 'tab\there\\back\\slash \\N \\t line\nbreak\r\n é✓ 日本 😀 \u0001';
    const value = pattern.repeat(Math.ceil((20 * 1024 * 1024) / Buffer.byteLength(pattern)));
    await sql(`CREATE TABLE "${schema}".big (id int, before text, huge text, after text)`);
    await sql(`INSERT INTO "${schema}".big VALUES (1, 'a\tb', $1, 'c\\d'), (2, NULL, 'small', NULL)`, [value]);
    // No params: the rows travel through COPY, the huge one over many chunks.
    const { rows } = await readAll(`SELECT id, before, huge, after FROM "${schema}".big ORDER BY id`);
    expect(rows).to.have.lengthOf(2);
    const [first, second] = rows as unknown[][];
    expect(first![0]).to.equal(1);
    expect(first![1]).to.equal('a\tb');
    expect((first![2] as string).length).to.equal(value.length);
    // Compared as a boolean: a failed comparison would print 20 MB twice.
    expect(first![2] === value, 'the 20 MB value read back differs from the one written').to.equal(true);
    expect(first![3]).to.equal('c\\d');
    expect(second).to.deep.equal([2, null, 'small', null]);
  });

  it('the session runs in UTC whatever zone the role sets, so a watermark compares with a timestamp column as it was read', async () => {
    const role = uniqueName('tp_paris');
    await sql(`CREATE ROLE "${role}" LOGIN`);
    await sql(`ALTER ROLE "${role}" SET TimeZone = 'Europe/Paris'`);
    await sql(`GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`);
    try {
      await sql(`CREATE TABLE "${schema}".events (id int, created_at timestamp)`);
      await sql(`INSERT INTO "${schema}".events VALUES (1, '2024-06-01 12:00:00'), (2, '2024-06-01 12:30:00')`);
      await sql(`GRANT SELECT ON "${schema}".events TO "${role}"`);
      const url = new URL(TEST_DATABASE_URL);
      url.username = role;
      const source = await postgresSource.create(
        { type: 'postgresql', url: url.toString(), query: `SELECT id, current_setting('TimeZone') AS zone FROM "${schema}".events WHERE created_at > $1::timestamptz ORDER BY id`, params: ['2024-06-01T12:00:00.000Z'] },
        { name: 'db', configDir: process.cwd(), log: memoryLogger().log, signal: new AbortController().signal },
      );
      const rows: unknown[] = [];
      for await (const batch of source.read({ signal: new AbortController().signal, batchSize: 10, log: memoryLogger().log })) rows.push(...batch.rows);
      await source.close!();
      expect(rows).to.deep.equal([[2, 'UTC']]);
    } finally {
      await sql(`DROP OWNED BY "${role}"`);
      await sql(`DROP ROLE "${role}"`);
    }
  });
});
