// Compiles the config schema to a standalone validator module at build time. Compiling it with
// ajv at start-up cost ~80 ms of every run (loading ajv, then generating the code); the
// generated module loads in a few. src/config/validate.ts falls back to ajv when it is missing.
import { writeFileSync, mkdirSync } from 'node:fs';
import { Ajv } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { buildConfigSchema } from '../dist/src/config/schema.js';
import { AJV_OPTIONS } from '../dist/src/config/ajv-options.js';

const ajv = new Ajv({ ...AJV_OPTIONS, code: { source: true } });
const validate = ajv.compile(buildConfigSchema());
// package.json maps #config-validator here, for the tsc output and the bundle alike.
const out = new URL('../dist/generated/', import.meta.url);
mkdirSync(out, { recursive: true });
// CommonJS: ajv's standalone output require()s its small runtime helpers.
writeFileSync(new URL('validate-config.cjs', out), standaloneCode.default(ajv, validate));
