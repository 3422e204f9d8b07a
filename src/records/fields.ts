/**
 * Typed field descriptors: what a target needs to know of a batch's columns before it writes
 * the first record (a CREATE TABLE, a COPY column list, a Parquet schema). A source supplies
 * them when it knows them (CSV `columns:` types, a database's result metadata); otherwise they
 * are inferred from the records.
 */

/**
 * - `integer`: whole numbers; `number`: any JSON number; `decimal`: exact decimals kept as text
 *   (PostgreSQL `numeric`, big integers), never rounded through a double;
 * - `timestamp`: an instant, exported as ISO 8601 UTC;
 * - `json`: nested objects and lists; `string`, `boolean` as named.
 */
export type FieldType = 'string' | 'integer' | 'number' | 'decimal' | 'boolean' | 'timestamp' | 'json';

export interface FieldDescriptor {
  readonly name: string;
  readonly type: FieldType;
  readonly nullable: boolean;
}

/** The metadata every exported record carries unless include_metadata is false. */
export const METADATA_DESCRIPTORS: readonly FieldDescriptor[] = [
  { name: '_rule', type: 'string', nullable: false },
  { name: '_datasource', type: 'string', nullable: false },
  { name: '_run_id', type: 'string', nullable: false },
  { name: '_matched_at', type: 'timestamp', nullable: false },
];

/** The type a JSON-ish value suggests; undefined for null and undefined (they only make a field nullable). */
export function typeOfValue(value: unknown): FieldType | undefined {
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isInteger(value) ? 'integer' : 'number';
    case 'bigint':
      return 'decimal';
    case 'boolean':
      return 'boolean';
    case 'object':
      if (value === null) return undefined;
      return value instanceof Date ? 'timestamp' : 'json';
    default:
      return undefined;
  }
}

/** Two observed types of one field as one: integer and number make number; anything else mixed is text. */
export function widenType(a: FieldType | undefined, b: FieldType | undefined): FieldType | undefined {
  if (a === undefined) return b;
  if (b === undefined || a === b) return a;
  const numeric = new Set<FieldType>(['integer', 'number']);
  if (numeric.has(a) && numeric.has(b)) return 'number';
  if ((a === 'decimal' && numeric.has(b)) || (b === 'decimal' && numeric.has(a))) return 'decimal';
  return 'string';
}

/**
 * Descriptors for plain-object records that came without any: every key in order of first
 * appearance, the type their values agree on, nullable when some record lacks the key or holds null.
 */
export function inferFields(records: readonly Readonly<Record<string, unknown>>[]): FieldDescriptor[] {
  const order: string[] = [];
  const types = new Map<string, FieldType | undefined>();
  const seen = new Map<string, number>();
  const nulls = new Set<string>();
  for (const record of records) {
    for (const key of Object.keys(record)) {
      const value = record[key];
      if (!seen.has(key)) {
        order.push(key);
        seen.set(key, 0);
      }
      seen.set(key, seen.get(key)! + 1);
      if (value === null || value === undefined) nulls.add(key);
      else types.set(key, widenType(types.get(key), typeOfValue(value)));
    }
  }
  return order.map((name) => ({
    name,
    type: types.get(name) ?? 'string',
    nullable: nulls.has(name) || seen.get(name)! < records.length,
  }));
}

/** The descriptors of an exported record: the source's fields (metadata-named ones replaced) then the metadata. */
export function withMetadata(fields: readonly FieldDescriptor[], includeMetadata: boolean): FieldDescriptor[] {
  if (!includeMetadata) return [...fields];
  const names = new Set(METADATA_DESCRIPTORS.map((f) => f.name));
  return [...fields.filter((f) => !names.has(f.name)), ...METADATA_DESCRIPTORS];
}
