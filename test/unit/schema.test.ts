import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildConfigSchema, buildRuleFileSchema } from '../../src/config/schema.js';
import { repoRoot } from '../helpers.js';

describe('schemas/config.schema.json', () => {
  it('is what the connectors and rules declare (run `npm run schema` after changing them)', () => {
    const checkedIn = JSON.parse(readFileSync(path.join(repoRoot, 'schemas', 'config.schema.json'), 'utf8'));
    expect(checkedIn).to.deep.equal(buildConfigSchema());
  });

  it('schemas/rules.schema.json, for rule files, is current too, and accepts both rule-file shapes', async () => {
    const checkedIn = JSON.parse(readFileSync(path.join(repoRoot, 'schemas', 'rules.schema.json'), 'utf8'));
    expect(checkedIn).to.deep.equal(buildRuleFileSchema());
    const { Ajv } = await import('ajv');
    const validate = new Ajv({ strict: false }).compile(checkedIn);
    const rule = { name: 'r', threshold_field: 'v', threshold_type: 'greater_than', threshold_value: 1, export_target: 'x' };
    expect(validate([rule])).to.equal(true);
    expect(validate({ processing_rules: [rule] })).to.equal(true);
    expect(validate([{ ...rule, threshhold_value: 1 }])).to.equal(false);
  });

  it('describes every property, so editors and docs can show it', () => {
    const missing: string[] = [];
    const walk = (node: unknown, where: string) => {
      if (node === null || typeof node !== 'object') return;
      const schema = node as Record<string, unknown>;
      for (const [name, prop] of Object.entries((schema.properties as Record<string, Record<string, unknown>>) ?? {})) {
        const isConst = prop && 'const' in prop;
        if (!prop?.description && !prop?.$ref && !isConst) missing.push(`${where}.${name}`);
        walk(prop, `${where}.${name}`);
      }
      for (const [key, value] of Object.entries(schema)) if (key !== 'properties' && typeof value === 'object') walk(value, `${where}/${key}`);
    };
    walk(buildConfigSchema(), '');
    expect(missing).to.deep.equal([]);
  });
});
