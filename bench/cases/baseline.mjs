// Baseline: the plainest streaming CSV parse, csv-parse with `columns: true` (one object per
// record), counting records. Every ratio in the report is relative to this.
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import { caseParams, runCase } from '../lib/child.mjs';

const { file } = caseParams();

await runCase(async () => {
  let rows = 0;
  const parser = parse({ columns: true });
  // The read() loop on 'readable' is the idiom csv-parse documents for streams.
  parser.on('readable', () => {
    while (parser.read() !== null) rows++;
  });
  await pipeline(createReadStream(file), parser);
  return { rows };
});
