import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SINKS } from '../../connectors/index.js';
import { repoRoot } from '../helpers.js';

/** docs/delivery.md's table of batching defaults, as {key: {target: text}}. */
function documentedDefaults(): Record<string, Record<string, string>> {
  const text = readFileSync(path.join(repoRoot, 'docs', 'delivery.md'), 'utf8');
  const lines = text.split('\n');
  const headerAt = lines.findIndex((l) => l.startsWith('| key | meaning |'));
  const targets = lines[headerAt]!.split('|').map((c) => c.trim()).slice(3, -1);
  const table: Record<string, Record<string, string>> = {};
  for (const line of lines.slice(headerAt + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').map((c) => c.trim());
    const key = cells[1]!.replaceAll('`', '');
    table[key] = Object.fromEntries(targets.map((t, i) => [t, cells[i + 3]!]));
  }
  return table;
}

const asText = (key: string, value: number | string) =>
  key === 'batch_bytes' ? `${Number(value) / (1024 * 1024)} MiB` : String(value);

describe('docs/delivery.md', () => {
  it('lists every target with the batching defaults its spec declares', () => {
    const documented = documentedDefaults();
    for (const spec of SINKS) {
      for (const [key, value] of Object.entries(spec.batching)) {
        expect(documented[key]?.[spec.type], `${spec.type} ${key}`).to.equal(asText(key, value));
      }
    }
  });
});
