// `npm run bench` part two: one file per export target or datasource in bench/connectors/, each
// measuring that connector against its server's own floor in the same run (ratios, not timings).
//
// A connector bench exports `name` and `async run({ progress, report })`, returning
// `{ rows: [{ case, figure, unit, floor?, ratio?, note? }] }`. A connector whose server is not
// reachable reports that and is skipped; the others go on. BENCH_CONNECTORS (comma list) selects.
// Results land in bench/connectors-results.json, each connector's with the time it was measured;
// a run of some connectors keeps the others' last results.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = fileURLToPath(new URL('./connectors/', import.meta.url));
const progress = (message) => process.stderr.write(`[bench] ${message}\n`);
const wanted = process.env.BENCH_CONNECTORS?.split(',').map((s) => s.trim()).filter(Boolean);

const files = readdirSync(dir).filter((f) => f.endsWith('.mjs')).sort();
const results = {};
let failed = false;
for (const file of files) {
  const mod = await import(pathToFileURL(join(dir, file)).href);
  if (wanted && !wanted.includes(mod.name)) continue;
  progress(`connector bench: ${mod.name}`);
  try {
    results[mod.name] = { at: new Date().toISOString(), ...(await mod.run({ progress })) };
  } catch (err) {
    failed = true;
    results[mod.name] = { error: err.message };
    progress(`FAILURE ${mod.name}: ${err.stack ?? err.message}`);
  }
}

const lines = ['| connector | case | figure | floor | ratio | note |', '|---|---|---|---|---|---|'];
for (const [name, r] of Object.entries(results)) {
  for (const row of r.rows ?? []) {
    const fmt = (v) => (v === undefined ? '' : typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v);
    lines.push(`| ${name} | ${row.case} | ${fmt(row.figure)} ${row.unit ?? ''} | ${fmt(row.floor)} | ${fmt(row.ratio)} | ${row.note ?? ''} |`);
  }
  if (r.error) lines.push(`| ${name} | failed | | | | ${r.error} |`);
}
process.stdout.write(`\n${lines.join('\n')}\n`);
const resultsFile = join(dir, '..', 'connectors-results.json');
const earlier = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : {};
// Results of the old shape carry one time for the whole file: give it to each of its connectors.
const kept = Object.fromEntries(Object.entries(earlier.results ?? {}).map(([name, r]) => [name, { at: r.at ?? earlier.at, ...r }]));
writeFileSync(resultsFile, `${JSON.stringify({ results: { ...kept, ...results } }, null, 2)}\n`);
process.exitCode = failed ? 1 : 0;
