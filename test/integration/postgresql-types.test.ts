import { expect } from 'chai';
import { serverTimestampMillis } from '../../connectors/postgres/postgres-types.js';
import { toEpochMillis } from '../../src/rules/coerce.js';
import { withClient } from '../support/postgres-db.js';

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
