import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The test server: TEST_DATABASE_URL, by default the machine's PostgreSQL (trust auth, database `test`). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A unique lower-case name, so parallel runs never share a table or schema. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** A client of its own, outside any connector: what another reader of the database sees. */
export async function withClient<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

export function sql<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<R[]> {
  return withClient(async (client) => (await client.query<R>(text, values)).rows);
}

/**
 * A schema of its own for one test (or describe), dropped with everything in it afterwards.
 * Tables are named `${schema}.name` in configs.
 */
export function freshSchemaPerTest(use: (schema: string) => void): void {
  let schema = '';
  beforeEach(async () => {
    schema = uniqueName('tp_test');
    await sql(`CREATE SCHEMA "${schema}"`);
    use(schema);
  });
  afterEach(async () => {
    await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });
}

/** host, port and database of the test server, for configs that use the older tool's keys. */
export function testServer(): { host: string; port: number; database: string; username: string } {
  const u = new URL(TEST_DATABASE_URL);
  return { host: u.hostname, port: Number(u.port || 5432), database: u.pathname.slice(1) || 'postgres', username: decodeURIComponent(u.username || 'postgres') };
}
