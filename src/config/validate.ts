import { createRequire } from 'node:module';
import type { ErrorObject } from 'ajv';
import { closest } from '../util/suggest.js';
import { AJV_OPTIONS } from './ajv-options.js';

/** A schema violation at a path in the merged config, before it is placed in a file. */
export interface SchemaIssue {
  readonly path: (string | number)[];
  readonly message: string;
  /** The issue is about the key itself (an unknown key), so point at the key, not its value. */
  readonly atKey: boolean;
}

type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

let compiled: Promise<Validator> | undefined;

/** package.json `imports` maps it to the validator generated at build time (scripts/build-validator.mjs). */
const PRECOMPILED: string = '#config-validator';

/** The build's precompiled validator, or (before a build has generated it) one compiled now. */
function validator(): Promise<Validator> {
  compiled ??= loadPrecompiled().catch(async () => {
    const [{ Ajv }, { buildConfigSchema }] = await Promise.all([import('ajv'), import('./schema.js')]);
    return new Ajv(AJV_OPTIONS).compile(buildConfigSchema());
  });
  return compiled;
}

/** require(), not import(): import() of a CommonJS file first scans all 150 kB of it for export names. */
async function loadPrecompiled(): Promise<Validator> {
  const mod = createRequire(import.meta.url)(PRECOMPILED) as { default: Validator };
  return mod.default;
}

/** Every way `config` breaks the schema, in the user's words. */
export async function validateAgainstSchema(config: unknown): Promise<SchemaIssue[]> {
  const validate = await validator();
  if (validate(config)) return [];
  const seen = new Set<string>();
  const issues: SchemaIssue[] = [];
  for (const error of validate.errors ?? []) {
    const issue = describeError(error);
    if (!issue) continue;
    const id = JSON.stringify(issue.path) + issue.message;
    if (seen.has(id)) continue;
    seen.add(id);
    issues.push(issue);
  }
  return issues;
}

function pathOf(instancePath: string): (string | number)[] {
  if (!instancePath) return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value pairs)',
  null: 'null',
};

function describeError(error: ErrorObject): SchemaIssue | undefined {
  const path = pathOf(error.instancePath);
  const params = error.params as Record<string, any>;
  switch (error.keyword) {
    case 'if':
      return undefined; // the failing then/else branch reports the real problem
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema as { properties?: object })?.properties ?? {});
      const hint = closest(key, known);
      const suffix = hint ? `; did you mean "${hint}"?` : known.length ? `; allowed here: ${known.join(', ')}` : '';
      return { path: [...path, key], message: `unknown key "${key}"${suffix}`, atKey: true };
    }
    case 'required':
      return { path, message: `missing required key "${params.missingProperty}"`, atKey: false };
    case 'type': {
      const wanted = String(params.type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t)
        .join(' or ');
      return { path, message: `must be ${wanted}`, atKey: false };
    }
    case 'enum':
      return { path, message: describeEnum(path, error.data, params.allowedValues as unknown[]), atKey: false };
    case 'const':
      return { path, message: `must be ${JSON.stringify(params.allowedValue)}`, atKey: false };
    case 'pattern':
      return { path, message: describePattern(String(params.pattern), error.data), atKey: false };
    case 'minItems':
      return { path, message: params.limit === 1 ? 'must not be empty' : `must have at least ${params.limit} items`, atKey: false };
    case 'minLength':
      return { path, message: params.limit === 1 ? 'must not be empty' : `must be at least ${params.limit} characters`, atKey: false };
    case 'maxLength':
      return { path, message: params.limit === 1 ? 'must be a single character' : `must be at most ${params.limit} characters`, atKey: false };
    default:
      return { path, message: error.message ?? `fails ${error.keyword}`, atKey: false };
  }
}

/**
 * What a value failing a pattern should look like. Only a duration is quoted back: any other
 * patterned key is an address (a URL with a password from the environment in it) or a name, and
 * its value is not repeated in a message.
 */
function describePattern(pattern: string, data: unknown): string {
  if (pattern.includes('(ms|s|m|h|d|w)')) return `must be a duration such as "30s", "15m", "1h" or "1h30m", got ${JSON.stringify(data)}`;
  if (pattern.startsWith('^postgres')) return 'must be a postgres:// or postgresql:// URL (postgres://user:password@host:port/database); its value is not shown, as it may hold a password';
  if (/^\^(\[Hh\]\[Tt\]\[Tt\]\[Pp\]|https)/.test(pattern)) return 'must be an http:// or https:// URL; its value is not shown, as it may hold a secret';
  if (pattern.startsWith('^[A-Za-z_]')) return `must be a table name or schema.table (letters, digits, _ and $, starting with a letter or _), got ${JSON.stringify(data)}`;
  return `does not have the expected form (the pattern ${pattern}); see this key in docs/config-reference.md`;
}

function describeEnum(path: (string | number)[], data: unknown, allowed: unknown[]): string {
  const last = path[path.length - 1];
  const what =
    last === 'operator' || last === 'threshold_type'
      ? 'operator'
      : last === 'type' && (path[0] === 'datasources' || path[0] === 'export_targets')
        ? path[0] === 'datasources'
          ? 'datasource type'
          : 'export target type'
        : 'value';
  const names = allowed.map(String);
  const hint = typeof data === 'string' ? closest(data, names) : undefined;
  return `unknown ${what} ${JSON.stringify(data)}` + (hint ? `; did you mean "${hint}"?` : `; one of: ${names.join(', ')}`);
}
