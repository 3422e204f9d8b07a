// Writes schemas/config.schema.json and schemas/rules.schema.json from the connectors' specs and the rule schema (run after
// `npm run build`). A test fails when the checked-in file differs, so it cannot drift.
import { writeFileSync } from 'node:fs';
import { buildConfigSchema, buildRuleFileSchema } from '../dist/src/config/schema.js';

const write = (name, schema) => writeFileSync(new URL(`../schemas/${name}`, import.meta.url), JSON.stringify(schema, null, 2) + '\n');
write('config.schema.json', buildConfigSchema());
write('rules.schema.json', buildRuleFileSchema());
