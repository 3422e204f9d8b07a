import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { JsonSchema } from '../../connectors/types.js';
import { buildConfigSchema } from '../../src/config/schema.js';
import { renderConfigReference } from '../../src/docs/config-reference.js';
import { OPERATORS } from '../../src/rules/operators.js';
import { repoRoot } from '../helpers.js';

/** The markdown between a heading and the next heading of the same or a higher level. */
function sectionOf(doc: string, heading: string): string {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start, `no heading "${heading}"`).to.be.greaterThan(-1);
  const level = heading.split(' ')[0]!;
  const rest = doc.slice(start + heading.length + 2);
  const next = rest.search(new RegExp(`^#{1,${level.length}} `, 'm'));
  return next < 0 ? rest : rest.slice(0, next);
}

function keysOf(schema: JsonSchema): string[] {
  return Object.keys((schema.properties ?? {}) as object);
}

describe('docs/config-reference.md', () => {
  const doc = renderConfigReference();
  const schema = buildConfigSchema();
  const definitions = schema.definitions as Record<string, JsonSchema>;

  it('is what the schema and the operators say (run `npm run docs` after changing them)', () => {
    const checkedIn = readFileSync(path.join(repoRoot, 'docs', 'config-reference.md'), 'utf8');
    expect(checkedIn === doc, 'docs/config-reference.md is out of date: run `npm run docs` and commit the result').to.equal(true);
  });

  it('has a row for every key of every section, and every datasource and export target type', () => {
    const sections: [string, JsonSchema][] = [
      ['## Top level', schema],
      ['## settings', definitions.settings!],
      ['## Rule', definitions.rule!],
      ['## Condition', definitions.condition!],
      ...Object.entries(definitions)
        .filter(([name]) => /^(source|target)_/.test(name))
        .map(([name, def]): [string, JsonSchema] => [`### \`${name.replace(/^(source|target)_/, '')}\` ${name.startsWith('source') ? 'datasource' : 'export target'}`, def]),
    ];
    for (const [heading, of] of sections) {
      const text = sectionOf(doc, heading);
      for (const key of keysOf(of)) expect(text, `${heading} lacks ${key}`).to.match(new RegExp(`^\\| \`${key}\``, 'm'));
    }
  });

  it('shows type, default, allowed values, description and an example in each row', () => {
    const csv = sectionOf(doc, '### `csv` datasource');
    expect(csv).to.include('| `delimiter` | string | `","` | exactly 1 character | Field separator: one character, not a line break, and not the quote character. | `delimiter: ;` |');
    expect(csv).to.include('| `path` (required) | string |  | not empty |');
    const file = sectionOf(doc, '### `file` export target');
    expect(file).to.include('| `mode` | string | `append` | `append`, `overwrite` |');
    expect(sectionOf(doc, '## Rule')).to.include('| `conditions` | list of [condition](#condition), or one [condition](#condition) |');
    expect(sectionOf(doc, '## Top level')).to.include('| `settings` | [settings](#settings) |  |  | How the processor runs. |');
  });

  it('lists every operator with what its value must be and an example', () => {
    const operators = sectionOf(doc, '## Operators');
    for (const op of OPERATORS) expect(operators).to.match(new RegExp(`^\\| \`${op.name}\` \\| ${op.expects.replace(/[[\]().*+?]/g, '\\$&')} \\|.*\\| \`\\{ field: `, 'm'));
  });

  it('tells how to set up an editor with the schema', () => {
    expect(doc).to.include('# yaml-language-server: $schema=./schemas/config.schema.json');
  });
});
