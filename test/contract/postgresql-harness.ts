import { postgresSink } from '../../connectors/postgres/postgres-sink.js';
import { sql, testServer, TEST_DATABASE_URL, uniqueName } from '../support/postgres-db.js';
import type { HarnessSinkOptions, PlainRecord, TargetHarness } from './harness.js';

/** The fields each record shape of the suite carries: a row of the shared table holds nulls in the other shape's columns. */
const SHAPE_FIELDS: Record<string, readonly string[]> = {
  c: ['id', 'reading', 'seen', 'ok', 'note'],
  o: ['id', 'constructor', 'nested', 'missing', 'unicode'],
};
const METADATA = ['_rule', '_datasource', '_run_id', '_matched_at'];

/** A row as the suite's plain record: only its shape's fields (and metadata when the table has it); instants as ISO text. */
function asRecord(row: Record<string, unknown>): PlainRecord {
  const fields = [...SHAPE_FIELDS[String(row.id)[0]!]!, ...METADATA.filter((m) => m in row)];
  const record: PlainRecord = {};
  for (const field of fields) {
    const value = row[field];
    record[field] = value instanceof Date ? value.toISOString() : value;
  }
  return record;
}

/**
 * The PostgreSQL target on a table of its own in a schema of its own, created by the target
 * (create_table: true). received() reads the table from another connection, as any consumer would.
 */
export function postgresqlHarness(): TargetHarness {
  let schema = '';
  const secret = 'harness-s3cr3t-pw';
  const table = () => `"${schema}"."alerts"`;
  const rows = async (): Promise<PlainRecord[]> => {
    const exists = (await sql<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [table()]))[0]!.ok;
    return exists ? (await sql(`SELECT * FROM ${table()}`)).map(asRecord) : [];
  };
  const create = (options: HarnessSinkOptions, overrides: Record<string, unknown> = {}) =>
    postgresSink.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, table: `${schema}.alerts`, create_table: true, include_metadata: options.includeMetadata, ...overrides },
      { name: 'contract-postgresql', configDir: process.cwd(), log: options.log, signal: new AbortController().signal },
    );
  return {
    name: 'postgresql',
    delivery: 'atomic',
    secret,
    async setup() {
      schema = uniqueName('tp_contract');
      await sql(`CREATE SCHEMA "${schema}"`);
    },
    create: (options) => create(options),
    async createFailing(options) {
      // Trust authentication checks no password, so the failure is a role the server does not know; the password must still never show.
      const role = uniqueName('tp_no_such_role');
      const { host, port, database } = testServer();
      const sink = await create(options, { url: undefined, host, port, database, username: role, password: secret });
      return { sink, names: role };
    },
    received: rows,
    visibleBeforeFlush: rows,
    async traces() {
      const found: string[] = [];
      const tables = await sql<{ name: string }>('SELECT tablename AS name FROM pg_tables WHERE schemaname = $1', [schema]);
      for (const t of tables) found.push(`table ${t.name}`);
      return found;
    },
    async cleanup() {
      await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}
