import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ConfigIssue } from '../config/issues.js';
import { issueAt, parseYamlFile, toPlain, type YamlFile } from '../config/yaml-file.js';
import type { PlainRecord } from '../records/layout.js';
import { toEpochMillis } from '../rules/coerce.js';
import type { ConfigPath } from '../rules/compile.js';
import { closest } from '../util/suggest.js';

/** Where a case's records for one datasource come from: written inline, or a fixture file next to the test file. */
export type InputSource =
  | { readonly kind: 'records'; readonly records: readonly PlainRecord[] }
  | { readonly kind: 'csv' | 'json' | 'ndjson'; readonly file: string; readonly written: string };

export interface CaseInput {
  readonly datasource: string;
  /** Path of the input inside the test file, for messages. */
  readonly path: ConfigPath;
  readonly source: InputSource;
}

/** The matches one rule must produce, in order; each expected record lists only the fields it checks. */
export interface Expectation {
  readonly rule: string;
  readonly path: ConfigPath;
  readonly records: readonly PlainRecord[];
}

export interface RuleTestCase {
  readonly name: string;
  readonly path: ConfigPath;
  /** Epoch milliseconds the time windows measure from; undefined: the real clock. */
  readonly now: number | undefined;
  readonly inputs: readonly CaseInput[];
  readonly expectations: readonly Expectation[];
}

export interface RuleTestFile {
  readonly yaml: YamlFile;
  /** The test file's folder: `config:` and fixture paths start here. */
  readonly dir: string;
  /** The config named by `config:`, resolved against `dir`; undefined: the --config flag's. */
  readonly config: string | undefined;
  readonly cases: readonly RuleTestCase[];
}

const FILE_KEYS = ['config', 'tests'];
const CASE_KEYS = ['name', 'now', 'input', 'expect'];
const FIXTURE_KINDS: Record<string, 'csv' | 'json' | 'ndjson'> = { '.csv': 'csv', '.json': 'json', '.ndjson': 'ndjson', '.jsonl': 'ndjson' };
const INPUT_HINT = 'give a list of records, or the path of a .csv, .json or .ndjson file (relative to the test file)';

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Reads and checks the shape of a test file; names of rules and datasources are checked later, against the config. */
export async function readRuleTestFile(file: string, shown: string): Promise<{ testFile?: RuleTestFile; issues: ConfigIssue[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    return { issues: [{ file: shown, line: 1, col: 1, path: '', message: `cannot read test file: ${reason}` }] };
  }
  return parseRuleTestFile(shown, text, path.dirname(path.resolve(file)));
}

export function parseRuleTestFile(shown: string, text: string, dir: string): { testFile?: RuleTestFile; issues: ConfigIssue[] } {
  const { yaml, issues } = parseYamlFile(shown, text);
  if (issues.length > 0) return { issues };
  const checker = new ShapeChecker(yaml, dir);
  const testFile = checker.file(toPlain(yaml));
  return checker.issues.length > 0 ? { issues: checker.issues } : { testFile, issues: [] };
}

/** Walks the parsed YAML, collecting every problem with its position, and builds the typed test file. */
class ShapeChecker {
  readonly issues: ConfigIssue[] = [];

  constructor(
    private readonly yaml: YamlFile,
    private readonly dir: string,
  ) {}

  file(content: unknown): RuleTestFile | undefined {
    if (!isMapping(content)) {
      this.report([], 'a rule test file is a mapping with tests: [list of cases] and, optionally, config: FILE; see docs/rule-tests.md');
      return undefined;
    }
    this.refuseUnknownKeys(content, FILE_KEYS, []);
    const config = this.configPath(content.config);
    if (content.tests === undefined) {
      this.report([], 'missing tests: a list of cases, each with name, input and expect');
      return undefined;
    }
    if (!Array.isArray(content.tests) || content.tests.length === 0) {
      this.report(['tests'], 'tests must be a non-empty list of cases, each with name, input and expect');
      return undefined;
    }
    const cases = content.tests.map((c, i) => this.testCase(c, ['tests', i]));
    this.refuseDuplicateNames(cases);
    return { yaml: this.yaml, dir: this.dir, config, cases: cases.filter((c) => c !== undefined) };
  }

  private configPath(value: unknown): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value === 'string' && value.length > 0) return path.resolve(this.dir, value);
    this.report(['config'], 'config must be the path of the config to test, relative to this file, e.g. ../config.yaml');
    return undefined;
  }

  private testCase(value: unknown, at: ConfigPath): RuleTestCase | undefined {
    if (!isMapping(value)) {
      this.report(at, 'a case is a mapping with name, input and expect (and optionally now)');
      return undefined;
    }
    this.refuseUnknownKeys(value, CASE_KEYS, at);
    const name = typeof value.name === 'string' && value.name.trim() !== '' ? value.name : undefined;
    if (name === undefined) this.report(value.name === undefined ? at : [...at, 'name'], 'each case needs a name: a short sentence saying what it checks');
    const now = this.now(value.now, [...at, 'now']);
    const inputs = this.inputs(value.input, [...at, 'input']);
    const expectations = this.expectations(value.expect, at);
    if (name === undefined) return undefined;
    return { name, path: at, now, inputs, expectations };
  }

  private now(value: unknown, at: ConfigPath): number | undefined {
    if (value === undefined) return undefined;
    // Rules also read epoch numbers as timestamps, but in a test file a date someone can read is the point.
    const ms = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? toEpochMillis(value) : undefined;
    if (ms === undefined) {
      this.report(at, `now must be an ISO 8601 timestamp such as "2026-11-24T12:00:00Z", got ${JSON.stringify(value)}`);
    }
    return ms;
  }

  private inputs(value: unknown, at: ConfigPath): CaseInput[] {
    if (value === undefined || value === null) return [];
    if (!isMapping(value)) {
      this.report(at, `input maps each datasource name to its records: ${INPUT_HINT}`);
      return [];
    }
    return Object.entries(value).flatMap(([datasource, given]) => {
      const source = this.inputSource(given, [...at, datasource]);
      return source ? [{ datasource, path: [...at, datasource], source }] : [];
    });
  }

  private inputSource(value: unknown, at: ConfigPath): InputSource | undefined {
    if (Array.isArray(value)) {
      const records = this.records(value, at, 'an input record is a mapping of field: value');
      return records && { kind: 'records', records };
    }
    if (typeof value === 'string' && value.length > 0) {
      const kind = FIXTURE_KINDS[path.extname(value).toLowerCase()];
      if (kind) return { kind, file: path.resolve(this.dir, value), written: value };
      this.report(at, `cannot tell the format of "${value}": ${INPUT_HINT}`);
      return undefined;
    }
    this.report(at, `${INPUT_HINT}; got ${JSON.stringify(value ?? null)}`);
    return undefined;
  }

  private expectations(value: unknown, at: ConfigPath): Expectation[] {
    const hint = 'map each rule to check to the matches it must produce, in input order ([] for no match)';
    if (value === undefined) {
      this.report(at, `missing expect: ${hint}`);
      return [];
    }
    if (!isMapping(value) || Object.keys(value).length === 0) {
      this.report([...at, 'expect'], `expect must name at least one rule: ${hint}`);
      return [];
    }
    return Object.entries(value).flatMap(([rule, matches]) => {
      const where = [...at, 'expect', rule];
      if (!Array.isArray(matches)) {
        this.report(where, `the expected matches of "${rule}" must be a list: [] for no match, or [{field: value, ...}, ...]`, true);
        return [];
      }
      const records = this.records(matches, where, 'an expected match is a mapping of the fields to check, e.g. {id: "4"}');
      return records ? [{ rule, path: where, records }] : [];
    });
  }

  private records(list: unknown[], at: ConfigPath, message: string): PlainRecord[] | undefined {
    const bad = list.findIndex((r) => !isMapping(r));
    if (bad >= 0) {
      this.report([...at, bad], message);
      return undefined;
    }
    return list as PlainRecord[];
  }

  private refuseUnknownKeys(value: Mapping, allowed: readonly string[], at: ConfigPath): void {
    for (const key of Object.keys(value)) {
      if (allowed.includes(key)) continue;
      const hint = closest(key, allowed);
      this.report([...at, key], `unknown key "${key}"; ${hint ? `did you mean "${hint}"?` : `allowed: ${allowed.join(', ')}`}`, true);
    }
  }

  private refuseDuplicateNames(cases: readonly (RuleTestCase | undefined)[]): void {
    const first = new Map<string, RuleTestCase>();
    for (const c of cases) {
      if (c === undefined) continue;
      const earlier = first.get(c.name);
      if (earlier === undefined) first.set(c.name, c);
      else {
        const { line } = issueAt(this.yaml, [...earlier.path, 'name'], '');
        this.report([...c.path, 'name'], `duplicate case name "${c.name}" (first at line ${line}); give each case its own name`);
      }
    }
  }

  private report(at: ConfigPath, message: string, atKey = false): void {
    this.issues.push(issueAt(this.yaml, at, message, atKey));
  }
}
