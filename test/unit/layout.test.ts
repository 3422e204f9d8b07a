import { expect } from 'chai';
import fc from 'fast-check';
import type { MatchBatch } from '../../connectors/types.js';
import { toNdjsonPieces } from '../../src/encoding/ndjson.js';
import { exportRecords } from '../../src/records/export-record.js';
import { ColumnLayout, OBJECT_LAYOUT, type ColumnType, type RowLayout } from '../../src/records/layout.js';
import { bindPredicate, prepareCondition, type RuleIssue } from '../../src/rules/compile.js';
import { FALSE, TRUE, UNKNOWN, type Truth } from '../../src/rules/truth.js';

function batchOf(layout: RowLayout, rows: unknown[]): MatchBatch {
  return { rule: 'r', datasource: 'd', runId: 'run', matchedAt: '2026-01-01T00:00:00.000Z', layout, rows };
}

function evaluate(layout: RowLayout, field: string, operator: string, value: unknown, row: unknown): Truth {
  const issues: RuleIssue[] = [];
  const node = prepareCondition({ field, operator, value }, ['c'], issues);
  if (!node) throw new Error(issues.map((i) => i.message).join('; '));
  return bindPredicate(node, (f) => layout.accessor(f))(row, { now: 0 });
}

const BUILT_IN_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__'];

describe('field names that are built-in object properties are data', () => {
  it('a column named constructor exports, typed or not', () => {
    const cases: [Record<string, ColumnType>, unknown][] = [[{}, '7'], [{ value: 'number' }, '7'], [JSON.parse('{"constructor": "number"}') as Record<string, ColumnType>, 7]];
    for (const [types, exported] of cases) {
      const layout = new ColumnLayout(['constructor', 'value'], types);
      const batch = batchOf(layout, [['7', '1.5']]);
      const expected = { constructor: exported, value: types.value ? 1.5 : '1.5' };
      expect(JSON.parse(toNdjsonPieces(batch, false).join('')), JSON.stringify(types)).to.deep.equal(expected);
      expect(exportRecords(batch, false), JSON.stringify(types)).to.deep.equal([expected]);
    }
  });

  it('every built-in name works as a column name, in toRecord and NDJSON', () => {
    for (const name of BUILT_IN_NAMES) {
      const layout = new ColumnLayout([name, 'n'], { n: 'number' });
      const record = layout.toRecord(['x', '2']);
      expect(Object.hasOwn(record, name), name).to.equal(true);
      expect(record[name], name).to.equal('x');
      expect(Object.keys(record), name).to.deep.equal([name, 'n']);
      expect(JSON.parse(toNdjsonPieces(batchOf(layout, [['x', '2']]), true).join(''))[name], name).to.equal('x');
    }
  });

  it('__proto__ as a column name round-trips in toRecord without touching the prototype', () => {
    const layout = new ColumnLayout(['id', '__proto__'], { __proto__: 'number' } as unknown as Record<string, 'number'>);
    const record = layout.toRecord(['1', '42']);
    expect(Object.getPrototypeOf(record)).to.equal(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(record, '__proto__')?.value).to.equal('42'); // the type was set through the prototype, not as a key
    expect(JSON.parse(JSON.stringify(record))).to.deep.equal(JSON.parse('{"id":"1","__proto__":"42"}'));
    const untyped = new ColumnLayout(['__proto__']).toRecord(['{}']);
    expect(Object.getOwnPropertyDescriptor(untyped, '__proto__')?.value).to.equal('{}');
    const exported = exportRecords(batchOf(new ColumnLayout(['__proto__']), [['v']]), true)[0]!;
    expect(Object.getOwnPropertyDescriptor(exported, '__proto__')?.value).to.equal('v');
  });

  it('a column type given as an own "__proto__" key applies', () => {
    const types = JSON.parse('{"__proto__": "number"}') as Record<string, 'number'>;
    const record = new ColumnLayout(['__proto__'], types).toRecord(['42']);
    expect(Object.getOwnPropertyDescriptor(record, '__proto__')?.value).to.equal(42);
  });

  it('an object record without a built-in name has no such field: is_null matches, equals does not', () => {
    for (const name of BUILT_IN_NAMES) {
      const row = { other: 1 };
      expect(evaluate(OBJECT_LAYOUT, name, 'is_null', undefined, row), name).to.equal(TRUE);
      expect(evaluate(OBJECT_LAYOUT, name, 'is_not_null', undefined, row), name).to.equal(FALSE);
      expect(evaluate(OBJECT_LAYOUT, name, 'equals', 'x', row), name).to.equal(UNKNOWN);
      expect(evaluate(OBJECT_LAYOUT, `nested.${name}`, 'is_null', undefined, { nested: {} }), name).to.equal(TRUE);
      expect(evaluate(OBJECT_LAYOUT, `other.${name}`, 'is_null', undefined, row), name).to.equal(TRUE);
    }
  });

  it('an object record that has the field reads it, directly or by a dotted path', () => {
    const row = JSON.parse('{"toString": "x", "constructor": "y", "__proto__": "z", "nested": {"valueOf": "w"}}');
    expect(evaluate(OBJECT_LAYOUT, 'toString', 'equals', 'x', row)).to.equal(TRUE);
    expect(evaluate(OBJECT_LAYOUT, 'constructor', 'equals', 'y', row)).to.equal(TRUE);
    expect(evaluate(OBJECT_LAYOUT, '__proto__', 'equals', 'z', row)).to.equal(TRUE);
    expect(evaluate(OBJECT_LAYOUT, 'nested.valueOf', 'equals', 'w', row)).to.equal(TRUE);
    expect(evaluate(OBJECT_LAYOUT, 'nested.toString', 'is_null', undefined, row)).to.equal(TRUE);
  });

  it('a column layout finds a built-in name only when it is a column', () => {
    const layout = new ColumnLayout(['a']);
    expect(evaluate(layout, 'constructor', 'is_null', undefined, ['1'])).to.equal(TRUE);
    expect(evaluate(layout, 'toString', 'equals', 'x', ['1'])).to.equal(UNKNOWN);
  });
});

describe('typed timestamp columns export as ISO 8601 UTC', () => {
  const layout = new ColumnLayout(['t'], { t: 'timestamp' });
  const exported = (text: string) => layout.toRecord([text]).t;

  it('any instant of years 0000-9999, written as toISOString writes it or without the fraction, exports as toISOString writes it', () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 }), (ms) => {
        const iso = new Date(ms).toISOString();
        expect(exported(iso)).to.equal(iso);
        const whole = new Date(ms - (((ms % 1000) + 1000) % 1000)).toISOString();
        expect(exported(whole.slice(0, 19) + 'Z')).to.equal(whole);
      }),
      { numRuns: 2000 },
    );
  });

  it('other shapes go through the general reader; impossible dates and lookalikes stay text', () => {
    expect(exported('2026-11-24 11:59:00')).to.equal('2026-11-24T11:59:00.000Z');
    expect(exported('2026-11-24T11:59:00z')).to.equal('2026-11-24T11:59:00.000Z');
    expect(exported('2026-11-24T11:59:00.5Z')).to.equal('2026-11-24T11:59:00.500Z');
    expect(exported('2026-11-24T13:59:00+02:00')).to.equal('2026-11-24T11:59:00.000Z');
    expect(exported('2026-02-30T11:59:00Z')).to.equal('2026-02-30T11:59:00Z');
    expect(exported('2026-11-24T24:00:00Z')).to.equal('2026-11-24T24:00:00Z');
    expect(exported('2026-11-24T11:59:60.000Z')).to.equal('2026-11-24T11:59:60.000Z');
    expect(exported('2026-W47-2T11:59:00Z')).to.equal('2026-W47-2T11:59:00Z');
  });
});
