import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { ConfigPath } from '../rules/compile.js';
import { formatPath, type ConfigIssue } from './issues.js';

/** A parsed YAML file that still knows where each of its nodes came from. */
export interface YamlFile {
  /** As the user named it (relative to the working directory), for messages. */
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

export function parseYamlFile(file: string, text: string): { yaml: YamlFile; issues: ConfigIssue[] } {
  const lines = new LineCounter();
  // merge: `<<: *defaults` works as in YAML 1.1, so shared rule settings can be written once.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const yaml = { file, doc, lines };
  const issues = doc.errors.map((err) => {
    const { line, col } = lines.linePos(err.pos[0]);
    return { file, line, col, path: '', message: yamlMessage(err.message) };
  });
  return { yaml, issues };
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
