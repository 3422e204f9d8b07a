import { expect } from 'chai';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import type { MatchBatch } from '../../connectors/types.js';
import { runInNewContext } from 'node:vm';
import { fetchCollector, HEAP_GROWTH_BEFORE_COLLECTION, HeapGuard, ParquetEncoder, prepareFor, prepareNew, rawColumns, ROW_GROUP_VALUES_AT_MOST } from '../../src/encoding/parquet.js';
import { csvLine } from '../../src/encoding/csv.js';
import type { FieldDescriptor } from '../../src/records/fields.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';

function batch(rows: Record<string, unknown>[], fields?: FieldDescriptor[]): MatchBatch {
  return { rule: 'r', datasource: 'd', runId: 'run', matchedAt: '2026-11-24T12:00:00.000Z', layout: OBJECT_LAYOUT, rows, ...(fields ? { fields } : {}) };
}

const kinds = (b: MatchBatch) => prepareNew(rawColumns(b, false)).columns.map((c) => `${c.name}:${c.kind}`);

/** Encodes batches into one file (row groups of `rowGroupRows`) and reads it back with hyparquet. */
async function roundTrip(batches: MatchBatch[], rowGroupRows = 1000) {
  const first = prepareNew(rawColumns(batches[0]!, false));
  const chunks: Buffer[] = [];
  const encoder = await ParquetEncoder.create(first.columns, { compression: 'snappy', rowGroupRows, emit: async (bytes) => void chunks.push(Buffer.from(bytes)) });
  await encoder.append(first);
  for (const b of batches.slice(1)) await encoder.append(prepareFor(first.columns, rawColumns(b, false))!);
  await encoder.finish({ records: String(encoder.rows) });
  const bytes = Buffer.concat(chunks);
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  return { metadata: parquetMetadata(file), rows: await parquetReadObjects({ file }) };
}

describe('Parquet encoding (src/encoding/parquet.ts)', () => {
  it('maps field types to columns: INT64, DOUBLE, text for decimals, BOOLEAN, TIMESTAMP, JSON', () => {
    const fields: FieldDescriptor[] = [
      { name: 'i', type: 'integer', nullable: true },
      { name: 'n', type: 'number', nullable: true },
      { name: 'd', type: 'decimal', nullable: true },
      { name: 'b', type: 'boolean', nullable: true },
      { name: 't', type: 'timestamp', nullable: true },
      { name: 'j', type: 'json', nullable: true },
      { name: 's', type: 'string', nullable: true },
    ];
    expect(kinds(batch([{ i: 1, n: 1.5, d: '1.10', b: true, t: new Date(0), j: [1], s: 'x' }], fields))).to.deep.equal([
      'i:INT64',
      'n:DOUBLE',
      'd:STRING',
      'b:BOOLEAN',
      't:TIMESTAMP',
      'j:JSON',
      's:STRING',
    ]);
  });

  it('a value the preferred type cannot hold exactly widens the column instead of being lost', () => {
    const fields: FieldDescriptor[] = [
      { name: 'i', type: 'integer', nullable: true },
      { name: 'big', type: 'integer', nullable: true },
      { name: 't', type: 'timestamp', nullable: true },
      { name: 'n', type: 'number', nullable: true },
    ];
    const rows = [
      { i: 1, big: 1, t: '2026-11-24T00:00:00Z', n: 1.5 },
      { i: 2.5, big: 2n ** 64n, t: 'not a time', n: '12345678901234567891' },
    ];
    expect(kinds(batch(rows, fields))).to.deep.equal(['i:DOUBLE', 'big:STRING', 't:STRING', 'n:STRING']);
    const prepared = prepareNew(rawColumns(batch(rows, fields), false));
    expect(prepared.data[1]).to.deep.equal(['1', '18446744073709551616']);
    expect(prepared.data[3]).to.deep.equal(['1.5', '12345678901234567891']);
  });

  it('prepareFor accepts a batch whose values convert exactly, and refuses a new field or a value the column cannot hold', () => {
    const columns = prepareNew(rawColumns(batch([{ a: 1, s: 'x' }]), false)).columns;
    expect(prepareFor(columns, rawColumns(batch([{ a: 2 }]), false))?.data).to.deep.equal([[2n], [null]]);
    expect(prepareFor(columns, rawColumns(batch([{ a: 1, s: 'y', extra: 1 }]), false))).to.equal(undefined);
    expect(prepareFor(columns, rawColumns(batch([{ a: 1.5, s: 'y' }]), false))).to.equal(undefined);
    // A field the schema lacks but that holds only nulls fits.
    expect(prepareFor(columns, rawColumns(batch([{ a: 3, s: 'z', extra: null }]), false))?.rows).to.equal(1);
  });

  describe('a CSV timestamp column (parsed once, straight from its text)', () => {
    const layout = new ColumnLayout(['t'], { t: 'timestamp' });
    const csv = (cells: string[]): MatchBatch => ({ ...batch([]), layout, rows: cells.map((c) => [c]) });

    it('is TIMESTAMP in epoch milliseconds, empty cells null, other layouts of the same instant equal', () => {
      const prepared = prepareNew(rawColumns(csv(['2026-11-24T08:00:00.000Z', '', '2026-11-24 09:00:00', '1764000000']), false));
      expect(prepared.columns).to.deep.equal([{ name: 't', kind: 'TIMESTAMP' }]);
      expect(prepared.data[0]).to.deep.equal([Date.UTC(2026, 10, 24, 8), null, Date.UTC(2026, 10, 24, 9), 1764000000 * 1000]);
    });

    it('epoch text with a fraction is whole milliseconds (as a Date keeps them), and the file is written', async () => {
      const prepared = prepareNew(rawColumns(csv(['1700000000123.7', '1700000000.123456', '-1.5']), false));
      expect(prepared.data[0]).to.deep.equal([1700000000123, 1700000000123, -1500]);
      const { rows } = await roundTrip([csv(['1700000000123.7', '1700000000.123456'])]);
      expect(rows.map((r) => (r.t as Date).toISOString())).to.deep.equal(['2023-11-14T22:13:20.123Z', '2023-11-14T22:13:20.123Z']);
    });

    it('an instant outside years 0000-9999 makes the column text, as the CSV path exports it', () => {
      const cells = ['2026-11-24T08:00:00.000Z', '253402300800000'];
      const prepared = prepareNew(rawColumns(csv(cells), false));
      expect(prepared.columns).to.deep.equal([{ name: 't', kind: 'STRING' }]);
      expect(prepared.data[0]).to.deep.equal(cells.map((c) => layout.converters[0]!(c)));
    });

    it('with a cell that does not parse, is text holding exactly what the CSV path exports for each cell', () => {
      const cells = ['2026-11-24 08:00:00', 'not a time', '', '2026-11-24T08:00:00Z'];
      const prepared = prepareNew(rawColumns(csv(cells), false));
      expect(prepared.columns).to.deep.equal([{ name: 't', kind: 'STRING' }]);
      expect(prepared.data[0]).to.deep.equal(cells.map((c) => layout.converters[0]!(c)));
      // A later batch of parseable cells goes into that text column the same way.
      expect(prepareFor(prepared.columns, rawColumns(csv(['2026-11-24 10:00:00']), false))?.data[0]).to.deep.equal([layout.converters[0]!('2026-11-24 10:00:00')]);
    });
  });

  describe('a field of untyped records with only nulls in the first batch', () => {
    const xKind = (columns: readonly { name: string; kind: string; open?: boolean }[]) => columns.find((c) => c.name === 'x');

    it('takes its kind from the first batch with a value, while no row group is written', async () => {
      const { metadata, rows } = await roundTrip([batch([{ a: 1, x: null }]), batch([{ a: 2, x: 5 }]), batch([{ a: 3, x: 7 }])]);
      expect(metadata.schema.find((e) => e.name === 'x')?.type).to.equal('INT64');
      expect(rows.map((r) => r.x)).to.deep.equal([null, 5n, 7n]);
    });

    it('is text from the first row group on when that group had to be written before any value came', async () => {
      const { metadata, rows } = await roundTrip([batch([{ a: 1, x: null }]), batch([{ a: 2, x: 5 }])], 1);
      const x = metadata.schema.find((e) => e.name === 'x');
      expect([x?.type, x?.converted_type]).to.deep.equal(['BYTE_ARRAY', 'UTF8']);
      expect(rows.map((r) => r.x)).to.deep.equal([null, '5']);
    });

    it('stays undecided when a later batch does not fit the rest of the schema (the schema is changed only by a batch that fits)', () => {
      const columns = prepareNew(rawColumns(batch([{ a: 1, x: null }]), false)).columns;
      expect(xKind(columns)).to.include({ open: true });
      expect(prepareFor(columns, rawColumns(batch([{ a: 1.5, x: true }]), false))).to.equal(undefined);
      expect(xKind(columns)).to.include({ open: true });
      expect(prepareFor(columns, rawColumns(batch([{ a: 2, x: true }]), false))?.data[1]).to.deep.equal([true]);
      expect(xKind(columns)).to.deep.include({ kind: 'BOOLEAN', open: false });
    });

    it('a declared type is kept even when the first batch holds only nulls', () => {
      const columns = prepareNew(rawColumns(batch([{ x: null }], [{ name: 'x', type: 'integer', nullable: true }]), false)).columns;
      expect(columns).to.deep.equal([{ name: 'x', kind: 'INT64' }]);
    });
  });

  it('round trip through hyparquet: values, nulls, several row groups, repeated and distinct text, key-value metadata', async () => {
    const fields: FieldDescriptor[] = [
      { name: 'id', type: 'integer', nullable: false },
      { name: 'status', type: 'string', nullable: true },
      { name: 'label', type: 'string', nullable: true },
      { name: 'at', type: 'timestamp', nullable: true },
      { name: 'meta', type: 'json', nullable: true },
    ];
    const make = (from: number) =>
      batch(
        Array.from({ length: 700 }, (_, k) => {
          const n = from + k;
          return n % 5 === 0
            ? { id: n, status: null, label: null, at: null, meta: null }
            : { id: n, status: n % 2 ? 'active' : 'offline', label: `l-${n}-é`, at: new Date(Date.UTC(2026, 0, 1) + n * 1000), meta: { n, tags: ['a'] } };
        }),
        fields,
      );
    const { metadata, rows } = await roundTrip([make(0), make(700), make(1400)], 1000);
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).to.deep.equal([1000, 1000, 100]);
    expect(metadata.key_value_metadata).to.deep.equal([{ key: 'records', value: '2100' }]);
    expect(rows).to.have.lengthOf(2100);
    for (const n of [0, 1, 2, 699, 700, 1401, 2099]) {
      expect(rows[n]).to.deep.equal(
        n % 5 === 0
          ? { id: BigInt(n), status: null, label: null, at: null, meta: null }
          : { id: BigInt(n), status: n % 2 ? 'active' : 'offline', label: `l-${n}-é`, at: new Date(Date.UTC(2026, 0, 1) + n * 1000), meta: { n, tags: ['a'] } },
      );
    }
  });

  it('a json column holds JSON scalars too: a JSON string keeps its quotes, so it never reads back as the object it spells', async () => {
    const fields: FieldDescriptor[] = [{ name: 'doc', type: 'json', nullable: true }];
    const docs = [{ k: 1 }, '{"k":1}', 42, '42', true, 'true', null, [1, 'a']];
    const b = batch(docs.map((doc) => ({ doc })), fields);
    expect(kinds(b)).to.deep.equal(['doc:JSON']);
    const { rows } = await roundTrip([b]);
    // hyparquet parses a JSON column back into values: each comes back as it went in
    expect(rows.map((r) => r.doc)).to.deep.equal(docs);
  });

  it('a DOUBLE column never turns a 0 into -0 (the writer\'s dictionary cannot tell them apart): -0 is written as 0, as JSON writes it', async () => {
    const fields: FieldDescriptor[] = [{ name: 'f', type: 'number', nullable: true }];
    const values = [-0, 0, 0, -0, 1.5, -0, 0];
    const { rows } = await roundTrip([batch(values.map((f) => ({ f })), fields)]);
    expect(rows.map((r) => (Object.is(r.f, -0) ? '-0' : String(r.f)))).to.deep.equal(['0', '0', '0', '0', '1.5', '0', '0']);
  });

  it('an invalid Date is null, in a timestamp column (which stays TIMESTAMP) and in a text one, as the text formats write it', async () => {
    const fields: FieldDescriptor[] = [
      { name: 't', type: 'timestamp', nullable: true },
      { name: 's', type: 'string', nullable: true },
    ];
    const records = [
      { t: new Date(Number.NaN), s: new Date(Number.NaN) },
      { t: new Date(1000), s: 'x' },
    ];
    expect(kinds(batch(records, fields))).to.deep.equal(['t:TIMESTAMP', 's:STRING']);
    const { rows } = await roundTrip([batch(records, fields)]);
    expect(rows).to.deep.equal([
      { t: null, s: null },
      { t: new Date(1000), s: 'x' },
    ]);
    expect(csvLine([new Date(Number.NaN), new Date(0)])).to.equal(',1970-01-01T00:00:00.000Z\n');
  });

  it('a batch larger than a row group is split at the boundaries: every record and every type kept', async () => {
    const fields: FieldDescriptor[] = [
      { name: 'id', type: 'integer', nullable: false },
      { name: 'value', type: 'number', nullable: true },
      { name: 'ok', type: 'boolean', nullable: true },
      { name: 'name', type: 'string', nullable: true },
      { name: 'at', type: 'timestamp', nullable: true },
      { name: 'meta', type: 'json', nullable: true },
    ];
    const record = (n: number) =>
      n % 11 === 0
        ? { id: n, value: null, ok: null, name: null, at: null, meta: null }
        : { id: n, value: n + 0.25, ok: n % 2 === 0, name: `n-${n}`, at: new Date(Date.UTC(2026, 0, 1) + n), meta: { n } };
    const { metadata, rows } = await roundTrip([batch(Array.from({ length: 2500 }, (_, n) => record(n)), fields)], 1000);
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).to.deep.equal([1000, 1000, 500]);
    expect(metadata.schema.slice(1).map((e) => `${e.name}:${e.type}:${e.repetition_type}`)).to.deep.equal([
      'id:INT64:OPTIONAL',
      'value:DOUBLE:OPTIONAL',
      'ok:BOOLEAN:OPTIONAL',
      'name:BYTE_ARRAY:OPTIONAL',
      'at:INT64:OPTIONAL',
      'meta:BYTE_ARRAY:OPTIONAL',
    ]);
    expect(rows).to.have.lengthOf(2500);
    rows.forEach((row, n) => {
      const want = record(n);
      expect(row).to.deep.equal({ ...want, id: BigInt(n) });
    });
  });

  it(`wide records make smaller row groups: at most ${ROW_GROUP_VALUES_AT_MOST.toLocaleString('en-US')} values each, every record kept`, async () => {
    const width = 2_000;
    const rows = Array.from({ length: 1_200 }, (_, r) => Object.fromEntries(Array.from({ length: width }, (_, c) => [`c${c}`, (r * 7 + c) % 97])));
    const { metadata, rows: back } = await roundTrip([batch(rows.slice(0, 700)), batch(rows.slice(700))], 20_000);
    const perGroup = Math.floor(ROW_GROUP_VALUES_AT_MOST / width);
    expect(perGroup).to.equal(500);
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).to.deep.equal([500, 500, 200]);
    expect(back).to.have.length(1_200);
    expect(back[1_199]).to.deep.equal(Object.fromEntries(Object.entries(rows[1_199]!).map(([k, v]) => [k, BigInt(v)])));
  });

  it('an object with exactly two full row groups holds no empty third one', async () => {
    const fields: FieldDescriptor[] = [{ name: 'id', type: 'integer', nullable: false }];
    const { metadata, rows } = await roundTrip([batch(Array.from({ length: 1500 }, (_, n) => ({ id: n })), fields), batch(Array.from({ length: 500 }, (_, n) => ({ id: 1500 + n })), fields)], 1000);
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).to.deep.equal([1000, 1000]);
    expect(rows.map((r) => r.id)).to.deep.equal(Array.from({ length: 2000 }, (_, n) => BigInt(n)));
  });
});

describe('HeapGuard (src/encoding/parquet.ts)', () => {
  const MiB = 1024 * 1024;

  it('collects only once the heap has grown by the threshold since the last collection', () => {
    const readings = [30 * MiB, 20 * MiB, 20 * MiB + HEAP_GROWTH_BEFORE_COLLECTION - 1, 20 * MiB + HEAP_GROWTH_BEFORE_COLLECTION, 21 * MiB];
    let collections = 0;
    let heap = 0;
    const guard = new HeapGuard(
      () => () => void collections++,
      () => readings[heap++]!,
    );
    // The first look finds 30 MiB over nothing: collects, and the heap after it (20 MiB) is the mark.
    expect(guard.afterRowGroup()).to.equal(true);
    expect(guard.afterRowGroup()).to.equal(false);
    expect(guard.afterRowGroup()).to.equal(true);
    expect(collections).to.equal(2);
    expect(heap).to.equal(5);
  });

  it('a collection the engine made by itself lowers the mark', () => {
    const readings = [40 * MiB, 40 * MiB, 10 * MiB, 10 * MiB + HEAP_GROWTH_BEFORE_COLLECTION];
    let collections = 0;
    let heap = 0;
    const guard = new HeapGuard(
      () => () => void collections++,
      () => readings[heap++]!,
    );
    expect(guard.afterRowGroup()).to.equal(true); // 40 over 0, mark 40
    expect(guard.afterRowGroup()).to.equal(false); // 10: below the mark, which drops to 10
    expect(guard.afterRowGroup()).to.equal(true); // 10 + threshold
    expect(collections).to.equal(2);
  });

  it('a large live heap may grow by half of itself before a collection, so collections stay a fixed share of the work', () => {
    const readings = [300 * MiB, 200 * MiB, 299 * MiB, 300 * MiB, 200 * MiB];
    let collections = 0;
    let heap = 0;
    const guard = new HeapGuard(
      () => () => void collections++,
      () => readings[heap++]!,
    );
    expect(guard.afterRowGroup()).to.equal(true); // mark 200 MiB: 100 MiB of growth allowed
    expect(guard.afterRowGroup()).to.equal(false); // 299
    expect(guard.afterRowGroup()).to.equal(true); // 300
    expect(collections).to.equal(2);
  });

  it('without a collector it does nothing', () => {
    const guard = new HeapGuard(() => null, () => 1e12);
    expect(guard.afterRowGroup()).to.equal(false);
  });

  it('finds the engine\'s collector without a node flag, and leaves it hidden from new contexts', () => {
    const gc = fetchCollector();
    expect(gc).to.be.a('function');
    gc!();
    expect(runInNewContext('typeof gc')).to.equal('undefined');
  });
});
