import { isScalar, parse, visit, type Scalar } from 'yaml';
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
export function substituteEnvironment(yaml: YamlFile, env: Environment): ConfigIssue[] {
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
    },
  });
  return issues;
}

function typedScalar(text: string): unknown {
  try {
    const value: unknown = parse(text);
    return value === null || typeof value === 'object' ? text : value;
  } catch {
    return text;
  }
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
