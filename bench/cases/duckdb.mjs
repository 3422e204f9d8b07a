// DuckDB running the union of the three rules as one SQL predicate over read_csv, either
// counting the matches or writing them as NDJSON (closer to what the processor does).
import { DuckDBInstance } from '@duckdb/node-api';
import { caseParams, runCase } from '../lib/child.mjs';
import { sqlPredicate } from '../lib/workload.mjs';

const { file, thresholds, nowMs, threads, mode, out } = caseParams();
const quote = (s) => `'${s.replaceAll("'", "''")}'`;

await runCase(async () => {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`SET threads = ${Number(threads)}`);
  const source = `read_csv(${quote(file)}, header = true)`;
  const where = sqlPredicate(thresholds, nowMs);
  const sql =
    mode === 'copy'
      ? `COPY (SELECT * FROM ${source} WHERE ${where}) TO ${quote(out)} (FORMAT json)`
      : `SELECT count(*) FROM ${source} WHERE ${where}`;
  const reader = await connection.runAndReadAll(sql);
  // COPY answers with the number of rows written, count(*) with the count: one BIGINT either way.
  const matched = Number(reader.getRows()[0][0]);
  return { matched };
});
