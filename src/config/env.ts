import { isScalar, visit, type Scalar } from 'yaml';
import type { ConfigIssue } from './issues.js';
import { formatPath } from './issues.js';
import type { YamlFile } from './yaml-file.js';

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}/g;
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-.*?)?\}$/;

export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string value (never in keys), so secrets
 * stay in the environment or a systemd EnvironmentFile. `$${` writes a literal `${`. A plain
 * (unquoted) value that is one reference takes the type of what it expands to, so
 * `port: ${PGPORT}` is a number; quote it to keep a string.
 */
export function substituteEnvironment(yaml: YamlFile, env: Environment, typedAt?: Set<string>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  visit(yaml.doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const original = node.value;
      const missing: string[] = [];
      const expanded = original.replace(REFERENCE, (whole, name: string | undefined, fallback: string | undefined) => {
        if (name === undefined) return '${';
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        missing.push(name);
        return whole;
      });
      for (const name of missing) {
        const { line, col } = yaml.lines.linePos(node.range?.[0] ?? 0);
        issues.push({
          file: yaml.file,
          line,
          col,
          path: formatPath(pathOf([...path, node])),
          message: `environment variable ${name} is not set; set it (e.g. in the service's EnvironmentFile) or give a default: \${${name}:-value}`,
        });
      }
      node.value = node.type === 'PLAIN' && WHOLE_REFERENCE.test(original) ? typedScalar(expanded) : expanded;
      if (typedAt && typeof node.value !== 'string') {
        const { line, col } = yaml.lines.linePos(node.range?.[0] ?? 0);
        typedAt.add(`${yaml.file}:${line}:${col}`);
      }
    },
  });
  return issues;
}

const YAML_NUMBER = /^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;
const YAML_BOOLEAN = /^(?:true|True|TRUE|false|False|FALSE)$/;

/**
 * The value a plain `${VAR}` stands for: a number or a boolean when the text is exactly one,
 * otherwise the text as it is. Nothing else is read as YAML, so "x #1" or a password with
 * quotes in it arrives unchanged.
 */
function typedScalar(text: string): unknown {
  if (YAML_NUMBER.test(text)) return Number(text);
  if (YAML_BOOLEAN.test(text)) return text.toLowerCase() === 'true';
  return text;
}

/** The key path of a node from the visitor's ancestor list. */
function pathOf(ancestors: readonly unknown[]): (string | number)[] {
  const path: (string | number)[] = [];
  for (let i = 1; i < ancestors.length; i++) {
    const parent = ancestors[i - 1] as { items?: unknown[] };
    const here = ancestors[i] as { key?: unknown };
    if (here && typeof here === 'object' && 'key' in here && isScalar(here.key)) path.push(String((here.key as Scalar).value));
    else if (Array.isArray(parent?.items)) path.push(parent.items.indexOf(here));
  }
  return path;
}
