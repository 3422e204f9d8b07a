import { readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { sinkSpec, sourceSpec } from '../../connectors/index.js';
import type { ConfigPath, RuleIssue } from '../rules/compile.js';
import { parseDuration } from '../rules/duration.js';
import { compileRules, type RuleConfig } from '../rules/rule.js';
import type { DedupPolicy } from '../state/dedup.js';
import { substituteEnvironment, type Environment } from './env.js';
import { contentDigest } from './content-digest.js';
import { ConfigError, sortIssues, type ConfigIssue } from './issues.js';
import { SETTINGS_DEFAULTS } from './schema.js';
import type { ConnectorConfig, LoadedConfig, Settings } from './types.js';
import { validateAgainstSchema } from './validate.js';
import { issueAt, locate, parseYamlFile, toPlain, type YamlFile } from './yaml-file.js';

export interface LoadOptions {
  readonly env?: Environment;
}

/** Where a merged rule came from: which file, and its path inside that file. */
interface RuleOrigin {
  readonly yaml: YamlFile;
  readonly prefix: ConfigPath;
}

/**
 * Reads, checks and compiles a config and its rule files. Throws ConfigError listing every
 * issue found, each placed at FILE:LINE:COL, so one run of --validate shows them all.
 */
export async function loadConfig(file: string, options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  // Where an unquoted ${VAR} became a number or boolean: a "must be a string" there gets a hint.
  const typedByEnv = new Set<string>();
  const main = await readYaml(file, env, typedByEnv);
  const raw = toPlain(main.yaml) as Record<string, unknown> | null;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([
      { file, line: 1, col: 1, path: '', message: 'the config must be a mapping with datasources, processing_rules and export_targets' },
    ]);
  }
  const dir = path.dirname(path.resolve(file));
  const issues: ConfigIssue[] = [...main.issues];
  const origins: RuleOrigin[] = [];
  if (raw.processing_rules === null) delete raw.processing_rules; // `processing_rules:` with nothing under it: no rules here
  const ownRules = Array.isArray(raw.processing_rules) ? raw.processing_rules : undefined;
  ownRules?.forEach((_, i) => origins.push({ yaml: main.yaml, prefix: ['processing_rules', i] }));

  const sources = ruleFileSources(raw, file, dir);
  const ruleFiles = await discoverRuleFiles(raw, sources, main.yaml, issues);
  const contentDigests = new Map([[path.resolve(file), main.digest]]);
  const fileRules: unknown[] = [];
  for (const ruleFile of ruleFiles) {
    const loaded = await readRuleFile(ruleFile, env, issues, typedByEnv);
    contentDigests.set(ruleFile, loaded.digest);
    for (const { rule, prefix } of loaded.rules) {
      fileRules.push(rule);
      origins.push({ yaml: loaded.yaml, prefix });
    }
  }
  const merged: Record<string, unknown> = { ...raw };
  if (fileRules.length > 0 && (ownRules || raw.processing_rules === undefined)) {
    merged.processing_rules = [...(ownRules ?? []), ...fileRules];
  }

  const place = (p: ConfigPath, message: string, atKey = false): ConfigIssue => {
    const origin = p[0] === 'processing_rules' && typeof p[1] === 'number' ? origins[p[1]] : undefined;
    return origin ? issueAt(origin.yaml, [...origin.prefix, ...p.slice(2)], message, atKey) : issueAt(main.yaml, p, message, atKey);
  };

  for (const issue of await validateAgainstSchema(merged)) issues.push(withEnvHint(place(issue.path, issue.message, issue.atKey), typedByEnv));
  if (issues.length > 0) throw new ConfigError(sortIssues(issues));

  const config = merged as {
    datasources: Record<string, ConnectorConfig>;
    export_targets: Record<string, ConnectorConfig>;
    processing_rules?: RuleConfig[];
    settings?: Partial<Settings>;
  };
  issues.push(...connectorIssues(config.datasources, 'datasources', place), ...connectorIssues(config.export_targets, 'export_targets', place));
  issues.push(...sharedFileIssues(config.export_targets, dir, place));

  const compiled = compileRules(config.processing_rules ?? [], {
    datasourceNames: Object.keys(config.datasources),
    targetNames: Object.keys(config.export_targets),
  });
  issues.push(...compiled.issues.map((issue) => placeRuleIssue(issue, place)));
  if (issues.length > 0) throw new ConfigError(sortIssues(issues));

  return Object.freeze({
    file,
    dir,
    settings: Object.freeze({ ...SETTINGS_DEFAULTS, ...config.settings }),
    datasources: config.datasources,
    targets: config.export_targets,
    rules: compiled.rules,
    ruleFiles: ruleFiles.map(displayPath),
    rulesDir: sources.rulesDir,
    include: sources.include,
    contentDigests,
    dedup: dedupPolicies(config.processing_rules ?? []),
    incremental: new Map(
      Object.entries(config.datasources).flatMap(([name, ds]) => {
        const inc = ds.incremental as { field?: string } | undefined;
        return inc?.field ? [[name, inc.field] as const] : [];
      }),
    ),
  });
}

function dedupPolicies(rules: readonly RuleConfig[]): Map<string, DedupPolicy> {
  const policies = new Map<string, DedupPolicy>();
  for (const rule of rules) {
    const { dedup_key: fields, realert } = rule as RuleConfig & { dedup_key?: string[]; realert?: string };
    const realertMs = realert === undefined ? undefined : parseDuration(realert);
    policies.set(rule.name, { ...(fields ? { fields } : {}), ...(realertMs !== undefined ? { realertMs } : {}) });
  }
  return policies;
}

function placeRuleIssue(issue: RuleIssue, place: (p: ConfigPath, m: string) => ConfigIssue): ConfigIssue {
  if (!issue.related) return place(issue.path, issue.message);
  const related = place(issue.related.path, '');
  return place(issue.path, `${issue.message} (${issue.related.label} ${related.file}:${related.line}:${related.col})`);
}

function connectorIssues(
  section: Record<string, ConnectorConfig>,
  name: 'datasources' | 'export_targets',
  place: (p: ConfigPath, m: string) => ConfigIssue,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [key, config] of Object.entries(section)) {
    const spec = name === 'datasources' ? sourceSpec(config.type) : sinkSpec(config.type);
    for (const problem of spec?.validate?.(config) ?? []) issues.push(place([name, key, ...(typeof problem.key === 'string' ? [problem.key] : problem.key)], problem.message));
  }
  return issues;
}

/** Two file targets writing the same path would each rename their own temp file over the other's. */
function sharedFileIssues(targets: Record<string, ConnectorConfig>, dir: string, place: (p: ConfigPath, m: string) => ConfigIssue): ConfigIssue[] {
  const owners = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  for (const [name, target] of Object.entries(targets)) {
    if (target.type !== 'file' || typeof target.path !== 'string') continue;
    const resolved = path.resolve(dir, target.path);
    const owner = owners.get(resolved);
    if (owner === undefined) owners.set(resolved, name);
    else issues.push(place(['export_targets', name, 'path'], `export target "${owner}" writes the same path; give each file target its own path, or send both rules to one target`));
  }
  return issues;
}

function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') ? file : relative;
}

function withEnvHint(issue: ConfigIssue, typedByEnv: Set<string>): ConfigIssue {
  if (!issue.message.startsWith('must be a string') || !typedByEnv.has(`${issue.file}:${issue.line}:${issue.col}`)) return issue;
  return { ...issue, message: `${issue.message}: the environment variable here holds a number or true/false; quote the reference ("\${VAR}") to keep it text` };
}

/**
 * Most a config or rule file may hold. The parsed document keeps every node with its position,
 * about 20 times the text in memory (a 4 MiB config peaks at 400 MB RSS), so a file of tens of
 * megabytes (a data file named by mistake, a generated config gone wrong) would exhaust the
 * heap; real configs are a few kilobytes.
 */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;

async function readYaml(file: string, env: Environment, typedAt?: Set<string>): Promise<{ yaml: YamlFile; issues: ConfigIssue[]; digest: string }> {
  const shown = displayPath(path.resolve(file));
  const problem = (message: string) => new ConfigError([{ file: shown, line: 1, col: 1, path: '', message }]);
  let bytes: Buffer;
  try {
    bytes = await readCapped(file, MAX_FILE_BYTES);
  } catch (err) {
    if (err instanceof TooLarge) {
      throw problem(`the file is ${formatBytes(err.size)}; a config or rule file may hold at most ${formatBytes(MAX_FILE_BYTES)}`);
    }
    const code = (err as NodeJS.ErrnoException).code;
    throw problem(`cannot read config: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder' : (err as Error).message}`);
  }
  const parsed = parseYamlFile(shown, new TextDecoder().decode(bytes));
  if (parsed.issues.length > 0) throw new ConfigError(parsed.issues);
  return { yaml: parsed.yaml, issues: substituteEnvironment(parsed.yaml, env, typedAt), digest: contentDigest(bytes) };
}

class TooLarge extends Error {
  constructor(readonly size: number) {
    super('too large');
  }
}

/** The file's bytes, refusing more than `max`: checked on its size first, then while reading (a pipe or a growing file has no size). */
async function readCapped(file: string, max: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size > max) throw new TooLarge(size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buffer = Buffer.allocUnsafe(Math.min(64 * 1024, max + 1 - total));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > max) throw new TooLarge(total);
      chunks.push(buffer.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

const RULE_FILE = /\.ya?ml$/i;
const RULE_TEST_FILE = /\.test\.ya?ml$/i;

/** Where rule files come from: the config's `rules_dir` (absolute) and `include` globs. */
export interface RuleFileSources {
  /** The config file, and its folder, from which `include` globs resolve. */
  readonly file: string;
  readonly dir: string;
  readonly rulesDir: string;
  readonly include: readonly string[];
}

export interface FoundRuleFiles {
  /** Each once, in load order: the rules folder's files in name order, then each glob's. */
  readonly files: string[];
  readonly rulesDirFound: boolean;
  /** Indexes of the `include` globs that matched no file. */
  readonly unmatchedIncludes: number[];
}

/**
 * The rule files the sources name on disk now. `--watch` calls it too, to notice a rule file
 * added or removed, so it must find exactly what a load would.
 */
export async function findRuleFiles(sources: RuleFileSources): Promise<FoundRuleFiles> {
  const configFile = path.resolve(sources.file);
  const files = new Set<string>();
  const rulesDirFound = isDirectory(sources.rulesDir);
  if (rulesDirFound) {
    for (const entry of readdirSync(sources.rulesDir, { recursive: true, encoding: 'utf8' }).sort()) {
      const file = path.join(sources.rulesDir, entry);
      if (RULE_FILE.test(entry) && !RULE_TEST_FILE.test(entry) && !isHidden(entry) && file !== configFile) files.add(file);
    }
  }
  const unmatchedIncludes: number[] = [];
  if (sources.include.length > 0) {
    const { glob } = await import('tinyglobby');
    for (const [i, pattern] of sources.include.entries()) {
      const found = (await glob(pattern, { cwd: sources.dir, absolute: true, onlyFiles: true })).sort();
      if (found.length === 0) unmatchedIncludes.push(i);
      for (const f of found) if (!RULE_TEST_FILE.test(f) && path.normalize(f) !== configFile) files.add(path.normalize(f));
    }
  }
  return { files: [...files], rulesDirFound, unmatchedIncludes };
}

/**
 * A path under the rules folder with a part that starts with a dot, which a load skips, as `include`
 * globs do. A Kubernetes ConfigMap mounted as the rules folder holds each file three times: in a
 * dated `..2026_...` folder, through the `..data` link to it, and as the link by its own name;
 * only the last is the rule file. Editors' lock files (`.#hot.yaml`) and `.git` stay out too.
 */
function isHidden(entry: string): boolean {
  return entry.split(path.sep).some((part) => part.startsWith('.'));
}

/** `rules_dir` (default `rules`) and `include` as the config writes them, resolved; malformed values are left to the schema. */
function ruleFileSources(raw: Record<string, unknown>, file: string, dir: string): RuleFileSources {
  const rulesDir = path.resolve(dir, typeof raw.rules_dir === 'string' ? raw.rules_dir : 'rules');
  const include = Array.isArray(raw.include) && raw.include.every((g) => typeof g === 'string') ? (raw.include as string[]) : [];
  return { file, dir, rulesDir, include };
}

/** Rule files from `rules_dir` (default `rules`, if it exists) and `include` globs; an explicit rules_dir must exist and each glob match. */
async function discoverRuleFiles(raw: Record<string, unknown>, sources: RuleFileSources, yaml: YamlFile, issues: ConfigIssue[]): Promise<string[]> {
  const found = await findRuleFiles(sources);
  if (!found.rulesDirFound && typeof raw.rules_dir === 'string') {
    issues.push(issueAt(yaml, ['rules_dir'], `rules_dir "${raw.rules_dir}" is not a folder (resolved to ${sources.rulesDir})`));
  }
  for (const i of found.unmatchedIncludes) issues.push(issueAt(yaml, ['include', i], `no file matches "${sources.include[i]}"`));
  return found.files;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A rule file holds a list of rules, or a mapping with one key, processing_rules, holding that list. */
async function readRuleFile(
  file: string,
  env: Environment,
  issues: ConfigIssue[],
  typedAt: Set<string>,
): Promise<{ yaml: YamlFile; digest: string; rules: { rule: unknown; prefix: ConfigPath }[] }> {
  const { yaml, issues: envIssues, digest } = await readYaml(file, env, typedAt);
  issues.push(...envIssues);
  const content = toPlain(yaml);
  if (content === null || content === undefined) return { yaml, digest, rules: [] };
  if (Array.isArray(content)) return { yaml, digest, rules: content.map((rule, i) => ({ rule, prefix: [i] })) };
  if (typeof content === 'object' && Array.isArray((content as Record<string, unknown>).processing_rules)) {
    const extra = Object.keys(content).filter((k) => k !== 'processing_rules');
    for (const key of extra) issues.push(issueAt(yaml, [key], `unknown key "${key}" in a rule file; it holds processing_rules only`, true));
    const list = (content as { processing_rules: unknown[] }).processing_rules;
    return { yaml, digest, rules: list.map((rule, i) => ({ rule, prefix: ['processing_rules', i] })) };
  }
  const { line, col } = locate(yaml, []);
  issues.push({ file: yaml.file, line, col, path: '', message: 'a rule file holds a list of rules, or processing_rules: [list of rules]' });
  return { yaml, digest, rules: [] };
}

