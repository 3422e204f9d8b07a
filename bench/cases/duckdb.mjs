// DuckDB running the union of the three rules as one SQL predicate over read_csv, either
// counting the matches or writing them as NDJSON. The NDJSON variant does the processor's work:
// each record gets the processor's metadata fields (`_rule`, which rule matched, and
// `_datasource`, `_run_id`, `_matched_at` as constants), and the file is fsynced before the case
// ends, as the file target syncs its file before renaming it into place.
import { open } from 'node:fs/promises';
import { DuckDBInstance } from '@duckdb/node-api';
import { caseParams, runCase } from '../lib/child.mjs';
import { sqlPredicate, sqlRuleName } from '../lib/workload.mjs';

const { file, thresholds, nowMs, threads, mode, out } = caseParams();
const quote = (s) => `'${s.replaceAll("'", "''")}'`;

/** The processor's run id shape (`20261124T080000Z-9f3a`) and matched-at time for this run. */
function metadataColumns() {
  const started = new Date();
  const runId = `${started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${Math.random().toString(16).slice(2, 6)}`;
  return [
    `${sqlRuleName(thresholds, nowMs)} AS _rule`,
    `'sensors' AS _datasource`,
    `${quote(runId)} AS _run_id`,
    `${quote(started.toISOString())} AS _matched_at`,
  ].join(', ');
}

async function fsyncFile(path) {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

await runCase(async () => {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`SET threads = ${Number(threads)}`);
  const source = `read_csv(${quote(file)}, header = true)`;
  const where = sqlPredicate(thresholds, nowMs);
  const sql =
    mode === 'copy'
      ? `COPY (SELECT *, ${metadataColumns()} FROM ${source} WHERE ${where}) TO ${quote(out)} (FORMAT json)`
      : `SELECT count(*) FROM ${source} WHERE ${where}`;
  const reader = await connection.runAndReadAll(sql);
  // COPY answers with the number of rows written, count(*) with the count: one BIGINT either way.
  const matched = Number(reader.getRows()[0][0]);
  if (mode === 'copy') await fsyncFile(out);
  return { matched };
});
