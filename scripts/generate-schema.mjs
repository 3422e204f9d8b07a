// Writes schemas/config.schema.json from the connectors' specs and the rule schema (run after
// `npm run build`). A test fails when the checked-in file differs, so it cannot drift.
import { writeFileSync } from 'node:fs';
import { buildConfigSchema } from '../dist/src/config/schema.js';

writeFileSync(new URL('../schemas/config.schema.json', import.meta.url), JSON.stringify(buildConfigSchema(), null, 2) + '\n');
