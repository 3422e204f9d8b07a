import { readFile, stat } from 'node:fs/promises';
import type { ConfigIssue } from '../config/issues.js';
import type { LoadedConfig } from '../config/types.js';
import { issueAt } from '../config/yaml-file.js';
import type { PlainRecord } from '../records/layout.js';
import type { ConfigPath } from '../rules/compile.js';
import { closest } from '../util/suggest.js';
import type { CaseInput, InputSource, RuleTestCase, RuleTestFile } from './test-file.js';

/**
 * Checks a test file against the config it tests (every rule and datasource it names exists,
 * every fixture file is there) and reads its JSON fixtures, so a case fails only on what the
 * rules did, never on a typo in the test.
 */
export async function resolveAgainstConfig(
  testFile: RuleTestFile,
  config: LoadedConfig,
): Promise<{ cases: RuleTestCase[]; issues: ConfigIssue[] }> {
  const issues: ConfigIssue[] = [];
  const report = (at: ConfigPath, message: string, atKey = false) => issues.push(issueAt(testFile.yaml, at, message, atKey));
  const ruleNames = config.rules.map((r) => r.name);
  const datasourceNames = Object.keys(config.datasources);
  const cases: RuleTestCase[] = [];
  for (const testCase of testFile.cases) {
    for (const { rule, path } of testCase.expectations) {
      if (!ruleNames.includes(rule)) report(path, unknownName('rule', rule, ruleNames, `${config.file} or its rule files`), true);
    }
    const inputs: CaseInput[] = [];
    for (const input of testCase.inputs) {
      if (!datasourceNames.includes(input.datasource)) {
        report(input.path, unknownName('datasource', input.datasource, datasourceNames, `the datasources of ${config.file}`), true);
        continue;
      }
      const source = await readFixture(input.source);
      if (typeof source === 'string') report(input.path, source);
      else inputs.push({ ...input, source });
    }
    cases.push({ ...testCase, inputs });
  }
  return { cases, issues };
}

function unknownName(kind: string, name: string, known: readonly string[], where: string): string {
  const hint = closest(name, known);
  const choices = hint ? `did you mean "${hint}"?` : known.length > 0 ? `defined: ${known.join(', ')}` : `there are none`;
  return `${kind} "${name}" is not defined in ${where}; ${choices}`;
}

/** JSON fixtures become records now; a CSV fixture is only checked to exist, because the real CSV reader reads it when the case runs. */
async function readFixture(source: InputSource): Promise<InputSource | string> {
  if (source.kind === 'records') return source;
  const missing = await fixtureMissing(source.file, source.written);
  if (missing) return missing;
  if (source.kind === 'csv') return source;
  // Editors on Windows save JSON with a byte order mark; CSV fixtures drop it too.
  const text = (await readFile(source.file, 'utf8')).replace(/^\uFEFF/, '');
  const records = source.kind === 'json' ? parseJsonArray(text) : parseJsonLines(text);
  return typeof records === 'string' ? `${source.written}: ${records}` : { kind: 'records', records };
}

async function fixtureMissing(file: string, written: string): Promise<string | undefined> {
  try {
    if ((await stat(file)).isFile()) return undefined;
    return `fixture "${written}" is not a file (resolved to ${file})`;
  } catch {
    return `fixture file "${written}" not found (resolved to ${file}); fixture paths are relative to the test file`;
  }
}

function parseJsonArray(text: string): PlainRecord[] | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not valid JSON: ${(err as Error).message}`;
  }
  if (!Array.isArray(value)) return 'a .json fixture holds one array of records: [{"field": "value"}, ...]';
  return recordsOrMessage(value, (i) => `item ${i + 1}`);
}

function parseJsonLines(text: string): PlainRecord[] | string {
  const values: unknown[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    try {
      values.push(JSON.parse(line));
    } catch (err) {
      return `line ${i + 1} is not valid JSON: ${(err as Error).message}`;
    }
  }
  return recordsOrMessage(values, (i) => `record ${i + 1}`);
}

function recordsOrMessage(values: unknown[], label: (i: number) => string): PlainRecord[] | string {
  const bad = values.findIndex((v) => v === null || typeof v !== 'object' || Array.isArray(v));
  return bad >= 0 ? `${label(bad)} is not an object; each record is {"field": "value", ...}` : (values as PlainRecord[]);
}
