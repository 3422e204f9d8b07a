/**
 * The one placeholder syntax of every target: file paths, S3 object keys, Redis keys, URLs and
 * request bodies. A template is compiled once, at config load, into literal text and accessors;
 * rendering a record concatenates them (no regular expression per record), and each value is
 * escaped for the place it lands in. docs/templates.md is the user's description.
 */
import { ConnectorError } from '../errors.js';
import { jsonValue } from '../encoding/ndjson.js';
import { hivePartitionValue, jsonStringContent, safeKeyPart, safeSegment, safeUrlPart, safeUrlPathPart } from './escape.js';
import { parseTemplate, type PlaceholderPart } from './parse.js';

/** Where the rendered text goes, which decides how values are escaped. */
export type TemplateContext = 'path' | 'key' | 'url' | 'json' | 'text';

/** Names a run supplies: reserved, so a record field of the same name is written `{record.rule}`. */
export const RUN_NAMES = ['rule', 'datasource', 'date', 'time', 'run_id', 'part'] as const;
export type RunName = (typeof RUN_NAMES)[number];

/** Metadata fields of an exported record: read from the record, or from the run when the record has none. */
const METADATA_NAMES: Readonly<Record<string, (run: RunValues) => unknown>> = {
  _rule: (run) => run.rule,
  _datasource: (run) => run.datasource,
  _run_id: (run) => run.runId,
  _matched_at: (run) => run.matchedAt,
};

/** What a batch of matches supplies to every record's rendering. */
export interface RunValues {
  readonly rule: string;
  readonly datasource: string;
  readonly runId: string;
  /** ISO 8601 UTC; `{date}` and `{time}` are taken from it. */
  readonly matchedAt: string;
  /** A number the target supplies (an S3 part number, a file sequence). */
  readonly part?: number;
}

export type TemplateRecord = Readonly<Record<string, unknown>>;

export interface CompileOptions {
  readonly context: TemplateContext;
  /** Run-level names this target supplies; default all of RUN_NAMES. Others are config errors. */
  readonly names?: readonly RunName[];
  /** Whether record fields may be used; false for a template rendered once per batch (a file path). Default true. */
  readonly fields?: boolean;
  /** How messages call the template: "the path", "the key". Default from the context. */
  readonly what?: string;
}

export interface Template {
  readonly text: string;
  readonly context: TemplateContext;
  /** Every placeholder name as written, once each, in order: `rule`, `meta.host`, `record`. */
  readonly placeholders: readonly string[];
  readonly runNames: readonly RunName[];
  /** Record field paths read (`record.rule` listed as `rule`); `.` for the whole record. */
  readonly fields: readonly string[];
  /** True when the output differs per record; false when it is the same for a whole batch. */
  readonly usesRecord: boolean;
  /** Config problems (syntax, unknown names, unsafe URL hosts, invalid JSON); render refuses a template that has any. */
  readonly issues: readonly string[];
  /** Throws a ConnectorError `TEMPLATE_MISSING_FIELD` when the record lacks a field that has no default. */
  render(run: RunValues, record?: TemplateRecord): string;
  /** The run's values filled in once, for a batch: the returned function renders one record. */
  bind(run: RunValues): (record?: TemplateRecord) => string;
}

type Getter = (run: RunValues, record: TemplateRecord | undefined) => string;
type Piece = string | Getter;

const DEFAULT_WHAT: Record<TemplateContext, string> = { path: 'the path', key: 'the key', url: 'the URL', json: 'the body', text: 'the text' };

export function compileTemplate(text: string, options: CompileOptions): Template {
  const { context } = options;
  const names = options.names ?? RUN_NAMES;
  const allowFields = options.fields ?? true;
  const what = options.what ?? DEFAULT_WHAT[context];
  const { parts, problems } = parseTemplate(text, context === 'json');
  const issues = [...problems];

  const placeholders: string[] = [];
  const runNames: RunName[] = [];
  const fields: string[] = [];
  const pieces: Piece[] = [];
  const runOnly = new Set<Getter>();
  const offered = () =>
    names.map((n) => `{${n}}`).join(', ') + (allowFields ? ' and record fields such as {id} or {meta.host}' : '');

  // In a URL, a value before the first `?` or `#` lands in the path, where `.` and `..` are dot-segments.
  let inUrlPath = context === 'url';
  // In a key, a value right after `name=` is a Hive partition value.
  let afterPartitionName = false;
  for (const part of parts) {
    if (part.kind === 'literal') {
      pieces.push(part.text);
      if (/[?#]/.test(part.text)) inUrlPath = false;
      afterPartitionName = context === 'key' && /(^|\/)[A-Za-z_][A-Za-z0-9_]*=$/.test(part.text);
      continue;
    }
    if (!placeholders.includes(part.name)) placeholders.push(part.name);
    const target = classify(part.name);
    if (target.kind === 'run' && !names.includes(target.name)) {
      issues.push(`unknown placeholder {${part.name}} in ${what}; ${what} can use ${offered()}`);
    } else if (target.kind !== 'run' && !allowFields) {
      issues.push(`unknown placeholder {${part.name}} in ${what}; ${what} can use ${offered()}`);
    }
    if (target.kind === 'run') {
      if (!runNames.includes(target.name)) runNames.push(target.name);
    } else {
      const field = target.kind === 'record' ? '.' : target.path;
      if (!fields.includes(field)) fields.push(field);
    }
    const getter = getterFor(part, target, inUrlPath ? 'url-path' : afterPartitionName ? 'partition-value' : context, text, what);
    afterPartitionName = false;
    if (target.kind === 'run') runOnly.add(getter);
    pieces.push(getter);
  }
  if (context === 'url') issues.push(...urlHostIssues(parts, text, what));
  if (context === 'json' && problems.length === 0) issues.push(...jsonIssues(parts, what));

  const render = (run: RunValues, record?: TemplateRecord): string => {
    if (issues.length > 0) throw invalid(text, issues);
    let out = '';
    for (const piece of pieces) out += typeof piece === 'string' ? piece : piece(run, record);
    return out;
  };

  const bind = (run: RunValues): ((record?: TemplateRecord) => string) => {
    if (issues.length > 0) throw invalid(text, issues);
    // Run-level values are the same for the whole batch: fill them in now and merge the literals around them.
    const bound: Piece[] = [];
    for (const piece of pieces) {
      const value = typeof piece === 'string' ? piece : runOnly.has(piece) ? piece(run, undefined) : piece;
      if (typeof value === 'string' && typeof bound[bound.length - 1] === 'string') bound[bound.length - 1] += value;
      else bound.push(value);
    }
    if (bound.length === 1 && typeof bound[0] === 'string') {
      const constant = bound[0];
      return () => constant;
    }
    return (record) => {
      let out = '';
      for (const piece of bound) out += typeof piece === 'string' ? piece : piece(run, record);
      return out;
    };
  };

  return Object.freeze({
    text,
    context,
    placeholders: Object.freeze(placeholders),
    runNames: Object.freeze(runNames),
    fields: Object.freeze(fields),
    usesRecord: fields.length > 0,
    issues: Object.freeze(issues),
    render,
    bind,
  });
}

/** A connector spec's `validate` result for a template key: each issue named by its key. */
export function templateIssues(text: string, options: CompileOptions, key: string): { key: string; message: string }[] {
  return compileTemplate(text, options).issues.map((message) => ({ key, message }));
}

const cache = new Map<string, Template>();

/** The compiled template for this text and these options, compiled on first use and kept (config templates are few). */
export function templateFor(text: string, options: CompileOptions): Template {
  const id = JSON.stringify([options.context, options.names ?? null, options.fields ?? true, options.what ?? null, text]);
  let template = cache.get(id);
  if (!template) {
    template = compileTemplate(text, options);
    cache.set(id, template);
  }
  return template;
}

type Target = { kind: 'run'; name: RunName } | { kind: 'record' } | { kind: 'field'; path: string };

/** Run-level names are reserved words; `record.` reaches a field that shares one's name; `.` / `record` is the whole record. */
function classify(name: string): Target {
  if (name === '.' || name === 'record') return { kind: 'record' };
  if (name.startsWith('record.') && name.length > 'record.'.length) return { kind: 'field', path: name.slice('record.'.length) };
  if ((RUN_NAMES as readonly string[]).includes(name)) return { kind: 'run', name: name as RunName };
  return { kind: 'field', path: name };
}

/** Where a value lands: a template's context, or more precisely the path of a URL or a Hive partition value of a key. */
type Placement = TemplateContext | 'url-path' | 'partition-value';

function getterFor(part: PlaceholderPart, target: Target, context: Placement, text: string, what: string): Getter {
  const read = readerFor(target);
  const escape = escaperFor(context, part.inString);
  const { fallback } = part;
  const fallbackText = fallback === undefined ? undefined : escapeFallback(fallback, context, part.inString);
  const describe = target.kind === 'run' ? `{${part.name}}` : `field "${target.kind === 'record' ? '.' : target.path}"`;
  return (run, record) => {
    const value = read(run, record);
    if (value !== undefined && value !== null) return escape(value);
    if (fallbackText !== undefined) return fallbackText;
    throw new ConnectorError(
      target.kind === 'run'
        ? `filling in ${what} "${text}": no value for {${part.name}}`
        : `filling in ${what} "${text}": the record has no ${describe} (or it is null); give a default with {${part.name}:-default}`,
      { code: 'TEMPLATE_MISSING_FIELD', details: { field: target.kind === 'run' ? part.name : target.kind === 'record' ? '.' : target.path, template: text } },
    );
  };
}

type Reader = (run: RunValues, record: TemplateRecord | undefined) => unknown;

function readerFor(target: Target): Reader {
  if (target.kind === 'record') return (_run, record) => record;
  if (target.kind === 'run') {
    switch (target.name) {
      case 'rule':
        return (run) => run.rule;
      case 'datasource':
        return (run) => run.datasource;
      case 'run_id':
        return (run) => run.runId;
      case 'date':
        return (run) => run.matchedAt.slice(0, 10);
      case 'time':
        return (run) => run.matchedAt.slice(11, 13) + run.matchedAt.slice(14, 16) + run.matchedAt.slice(17, 19);
      case 'part':
        return (run) => run.part;
    }
  }
  const field = fieldReader(target.path);
  const meta = METADATA_NAMES[target.path];
  if (meta !== undefined && Object.hasOwn(METADATA_NAMES, target.path)) {
    return (run, record) => {
      const value = record === undefined ? undefined : field(record);
      return value === undefined ? meta(run) : value;
    };
  }
  return (_run, record) => (record === undefined ? undefined : field(record));
}

/**
 * A record field by name; a dotted name reaches into nested objects unless the record has a key
 * with the dot in it (as rules read fields). Only own properties count: a field called
 * `constructor` or `__proto__` is data, never Object.prototype's.
 */
export function fieldReader(path: string): (record: TemplateRecord) => unknown {
  if (!path.includes('.')) return (record) => (Object.hasOwn(record, path) ? record[path] : undefined);
  const steps = path.split('.');
  return (record) => {
    if (Object.hasOwn(record, path)) return record[path];
    let value: unknown = record;
    for (const step of steps) {
      if (value === null || typeof value !== 'object' || !Object.hasOwn(value, step)) return undefined;
      value = (value as TemplateRecord)[step];
    }
    return value;
  };
}

/** A value as text: strings as they are, numbers and booleans as written, objects and arrays as JSON. */
function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return jsonValue(value);
  return String(value);
}

function escaperFor(context: Placement, inString: boolean): (value: unknown) => string {
  switch (context) {
    case 'url-path':
      return (v) => safeUrlPathPart(textOf(v));
    case 'partition-value':
      return (v) => hivePartitionValue(textOf(v));
    case 'path':
      return (v) => safeSegment(textOf(v));
    case 'key':
      return (v) => safeKeyPart(textOf(v));
    case 'url':
      return (v) => safeUrlPart(textOf(v));
    case 'text':
      return textOf;
    case 'json':
      // Inside a string literal: always text, escaped. Standing alone: the value with its JSON type.
      return inString ? (v) => jsonStringContent(textOf(v)) : jsonValue;
  }
}

/** A default is escaped like a value; standing alone in JSON, a number, true, false or null keeps its type and anything else is a string. */
function escapeFallback(fallback: string, context: Placement, inString: boolean): string {
  if (context === 'json' && !inString) return /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)$/.test(fallback) ? fallback : JSON.stringify(fallback);
  return escaperFor(context, inString)(fallback);
}

/** A placeholder may not choose the scheme or the host of an absolute URL: only its path, query and fragment. */
function urlHostIssues(parts: ReturnType<typeof parseTemplate>['parts'], text: string, what: string): string[] {
  if (!text.includes('://')) return [];
  let prefix = '';
  for (const part of parts) {
    if (part.kind === 'placeholder') {
      const scheme = prefix.indexOf('://');
      const hostEnds = scheme < 0 ? -1 : prefix.slice(scheme + 3).search(/[/?#]/);
      if (scheme < 0 || hostEnds < 0) return [`{${part.raw}} is in the scheme or host of ${what}; placeholders may only fill its path, query or fragment`];
      return [];
    }
    prefix += part.text;
  }
  return [];
}

/** A JSON template must be JSON once filled in: placeholders are replaced by null (standing alone) or nothing (in a string) and the result parsed. */
function jsonIssues(parts: ReturnType<typeof parseTemplate>['parts'], what: string): string[] {
  const probe = parts.map((p) => (p.kind === 'literal' ? p.text : p.inString ? '' : 'null')).join('');
  try {
    JSON.parse(probe);
    return [];
  } catch (err) {
    return [`${what} is not valid JSON once its placeholders are filled in: ${(err as Error).message}`];
  }
}

function invalid(text: string, issues: readonly string[]): ConnectorError {
  return new ConnectorError(`template "${text}": ${issues.join('; ')}`, { code: 'TEMPLATE_INVALID', details: { template: text } });
}
