import { expect } from 'chai';
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
  const node = prepareCondition({ field, operator, value }, ['c'], { now: 0 }, issues);
  if (!node) throw new Error(issues.map((i) => i.message).join('; '));
  return bindPredicate(node, (f) => layout.accessor(f))(row);
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
