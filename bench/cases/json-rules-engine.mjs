// json-rules-engine running the same three rules: records parsed by csv-parse (`columns: true`),
// then one engine.run() per record. It is slow, so the bench usually gives it the first `limit`
// rows only and extrapolates.
import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';
import { Engine } from 'json-rules-engine';
import { caseParams, runCase } from '../lib/child.mjs';
import { jsonRulesEngineRules, RULE_NAMES } from '../lib/workload.mjs';

const { file, thresholds, nowMs, limit } = caseParams();

function buildEngine() {
  const engine = new Engine([], { allowUndefinedFacts: true });
  // No stock time-window operator: compare the parsed timestamp with the cutoff in the rule.
  engine.addOperator('atOrAfter', (factValue, cutoffMs) => Date.parse(factValue) >= cutoffMs);
  for (const rule of jsonRulesEngineRules(thresholds, nowMs)) engine.addRule(rule);
  return engine;
}

await runCase(async () => {
  const engine = buildEngine();
  const counts = Object.fromEntries(RULE_NAMES.map((name) => [name, 0]));
  counts.union = 0;
  let rows = 0;
  // to_line stops the parser after `limit` data rows (+1 for the header).
  const parser = createReadStream(file).pipe(parse({ columns: true, to_line: limit + 1 }));
  for await (const record of parser) {
    const { events } = await engine.run(record);
    for (const event of events) counts[event.type]++;
    if (events.length > 0) counts.union++;
    rows++;
  }
  return { rows, counts };
});
