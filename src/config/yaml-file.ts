import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Alias, type Document, type Node } from 'yaml';
import type { ConfigPath } from '../rules/compile.js';
import { formatPath, type ConfigIssue } from './issues.js';

/** A parsed YAML file that still knows where each of its nodes came from. */
export interface YamlFile {
  /** As the user named it (relative to the working directory), for messages. */
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

/**
 * How far aliases may multiply a file: at most this many values once every alias is expanded
 * (or one per byte of the file, if more). A few hundred rules sharing `<<: *base` stay far
 * below it; an alias bomb ("billion laughs", 9 levels of 9 aliases) crosses it at once.
 */
export const MAX_EXPANDED_VALUES = 1_000_000;
/** Aliases (and anchors) per file: the yaml library finds each alias's anchor by a scan, so their number must stay bounded. */
export const MAX_ALIASES = 10_000;
/** Deeper nesting overflows the yaml parser's stack (it aborts the process near 10,000 levels). */
export const MAX_NESTING = 1_000;

export function parseYamlFile(file: string, text: string): { yaml: YamlFile; issues: ConfigIssue[] } {
  const lines = new LineCounter();
  const tooDeep = nestingBeyond(text, MAX_NESTING);
  if (tooDeep !== undefined) {
    // Not parsed at all: the parser would abort the process. An empty document keeps the YamlFile shape.
    const { line, col } = positionOf(text, tooDeep);
    const yaml = { file, doc: parseDocument(''), lines };
    return { yaml, issues: [{ file, line, col, path: '', message: `YAML nested more than ${MAX_NESTING} levels deep` }] };
  }
  // merge: `<<: *defaults` works as in YAML 1.1, so shared rule settings can be written once.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const yaml = { file, doc, lines };
  const issues = doc.errors.map((err) => {
    const { line, col } = lines.linePos(err.pos[0]);
    return { file, line, col, path: '', message: yamlMessage(err.message) };
  });
  if (issues.length === 0) issues.push(...aliasIssues(yaml, Math.max(MAX_EXPANDED_VALUES, text.length)));
  return { yaml, issues };
}

/**
 * The document as plain values. Call only on a file parseYamlFile() found no issue in: aliases
 * are then known to resolve and to expand to a bounded size, so the yaml library's own alias
 * limit (100 uses of an anchor, which a config of 100 rules sharing `<<: *base` reaches) is lifted.
 */
export function toPlain(yaml: YamlFile): unknown {
  return yaml.doc.toJS({ maxAliasCount: -1 });
}

/**
 * Aliases that point at no earlier anchor, or into themselves, and documents whose aliases
 * expand beyond `limit` values. Checked on the node tree with the size of each node counted
 * once, so a bomb is measured without being expanded.
 */
function aliasIssues(yaml: YamlFile, limit: number): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (node: Node, message: string): ConfigIssue => {
    const { line, col } = yaml.lines.linePos(node.range?.[0] ?? 0);
    return { file: yaml.file, line, col, path: '', message };
  };
  const anchors = new Map<string, Node>();
  const targets = new Map<Alias, Node>();
  let count = 0;
  visit(yaml.doc, (_key, node) => {
    if (isAlias(node)) {
      if (++count === MAX_ALIASES + 1) issues.push(at(node, `more than ${MAX_ALIASES} aliases in one file`));
      const target = anchors.get(node.source);
      if (target) targets.set(node, target);
      else issues.push(at(node, `alias *${node.source} comes before its anchor &${node.source} (or there is no such anchor); an anchor must be set before it is used`));
    } else if ((isScalar(node) || isCollection(node)) && node.anchor) {
      if (++count === MAX_ALIASES + 1) issues.push(at(node, `more than ${MAX_ALIASES} anchors and aliases in one file`));
      anchors.set(node.anchor, node);
    }
  });
  if (issues.length > 0 || targets.size === 0) return issues;

  const sizes = new Map<unknown, number>();
  const inProgress = new Set<unknown>();
  let problem: ConfigIssue | undefined;
  // Sizes saturate at limit + 1, so a bomb's 9^9 never becomes an unsafe number.
  const sizeOf = (node: unknown): number => {
    if (problem) return 0;
    if (isAlias(node)) {
      const target = targets.get(node)!;
      if (inProgress.has(target)) {
        problem = at(node, `alias *${node.source} refers to a node that contains it`);
        return 0;
      }
      const size = sizeOf(target);
      if (size > limit) problem ??= at(node, `alias *${node.source} expands to more than ${limit.toLocaleString('en-US')} values; aliases may not multiply a file that much (an alias bomb?)`);
      return size;
    }
    if (isPair(node)) return Math.min(limit + 1, sizeOf(node.key) + sizeOf(node.value));
    if (!isCollection(node)) return node === null || node === undefined ? 0 : 1;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    inProgress.add(node);
    let size = 1;
    for (const item of node.items as unknown[]) size = Math.min(limit + 1, size + sizeOf(item));
    inProgress.delete(node);
    sizes.set(node, size);
    return size;
  };
  const total = sizeOf(yaml.doc.contents);
  if (problem) return [problem];
  if (total > limit) return [at(yaml.doc.contents as Node, `aliases expand this file to more than ${limit.toLocaleString('en-US')} values (an alias bomb?)`)];
  return [];
}

/**
 * The offset where flow brackets (`[`, `{`) or compact sequences (`- - -`) first nest deeper
 * than `max`, if they do. A cheap scan that skips quoted text and comments: a bound against
 * deliberate nesting, not a parser (odd plain scalars may count a little off).
 */
function nestingBeyond(text: string, max: number): number | undefined {
  let depth = 0;
  let dashes = 0;
  let lineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      lineStart = true;
      dashes = 0;
      continue;
    }
    if (lineStart) {
      if (c === 0x20) continue;
      if (c === 0x2d && (text.charCodeAt(i + 1) === 0x20 || text.charCodeAt(i + 1) === 0x0a)) {
        if (++dashes > max) return i;
        continue;
      }
      lineStart = false;
    }
    if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) {
      if (depth > 0) depth--;
    } else if (c === 0x23 && (i === 0 || text.charCodeAt(i - 1) === 0x20 || text.charCodeAt(i - 1) === 0x09)) {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end - 1;
    } else if (c === 0x22 || c === 0x27) {
      const prev = i === 0 ? 0x20 : text.charCodeAt(i - 1);
      // A quote opens a quoted scalar only where a value starts, not inside a plain word (it's).
      if (prev === 0x20 || prev === 0x09 || prev === 0x5b || prev === 0x7b || prev === 0x2c || prev === 0x3a || prev === 0x0a) {
        i = closingQuote(text, i, c);
      }
    }
  }
  return undefined;
}

function closingQuote(text: string, open: number, quote: number): number {
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c && quote === 0x22) i++;
    else if (c === quote) {
      if (quote === 0x27 && text.charCodeAt(i + 1) === 0x27) i++;
      else return i;
    }
  }
  return text.length;
}

function positionOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

function yamlMessage(message: string): string {
  const first = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  return first.startsWith('Map keys must be unique') ? 'duplicate key: each key may appear once in a mapping' : `YAML syntax: ${first}`;
}

export interface Located {
  readonly line: number;
  readonly col: number;
}

/**
 * The position of the node at `path` (a key's position when `atKey`); where the path leaves the
 * document (a missing key), the closest existing parent.
 */
export function locate(yaml: YamlFile, path: ConfigPath, atKey = false): Located {
  let node: unknown = yaml.doc.contents;
  let position = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      const keyStart = rangeStart(pair.key);
      if (last && atKey && keyStart !== undefined) return yaml.lines.linePos(keyStart);
      node = pair.value;
      position = rangeStart(pair.value) ?? keyStart ?? position;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      node = node.items[segment];
      position = rangeStart(node) ?? position;
    } else {
      break;
    }
  }
  return yaml.lines.linePos(position);
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null)?.range?.[0];
}

export function issueAt(yaml: YamlFile, path: ConfigPath, message: string, atKey = false): ConfigIssue {
  const { line, col } = locate(yaml, path, atKey);
  return { file: yaml.file, line, col, path: formatPath(path), message };
}
