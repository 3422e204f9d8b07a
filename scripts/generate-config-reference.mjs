// Writes docs/config-reference.md from the config schema and the operators (run after the build,
// by `npm run docs`). A test fails when the checked-in file differs, so it cannot drift.
import { mkdirSync, writeFileSync } from 'node:fs';
import { renderConfigReference } from '../dist/src/docs/config-reference.js';

mkdirSync(new URL('../docs/', import.meta.url), { recursive: true });
writeFileSync(new URL('../docs/config-reference.md', import.meta.url), renderConfigReference());
