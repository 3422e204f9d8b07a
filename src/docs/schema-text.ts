import { stringify } from 'yaml';
import type { JsonSchema } from '../../connectors/types.js';

/** How one schema property reads in the reference: each cell of its table row. */
export interface KeyRow {
  readonly key: string;
  readonly required: boolean;
  readonly type: string;
  readonly defaultValue: string;
  readonly allowed: string;
  readonly description: string;
  readonly example: string;
}

/** Section titles a `$ref` links to, by definition name. */
const REFERENCE_LINKS: Record<string, string> = {
  rule: '[rule](#rule)',
  condition: '[condition](#condition)',
  settings: '[settings](#settings)',
};

export interface RowOptions {
  /** Examples for keys whose schema gives none, by key. */
  readonly examples?: Readonly<Record<string, unknown>>;
  /** The schema's definitions: a key that only refers to one takes its description. */
  readonly definitions?: Readonly<Record<string, JsonSchema>>;
}

export function keyRows(schema: JsonSchema, options: RowOptions = {}): KeyRow[] {
  const { examples = {}, definitions = {} } = options;
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = (schema.required ?? []) as string[];
  return Object.entries(properties).map(([key, property]) => ({
    key,
    required: required.includes(key),
    type: typeOf(property),
    defaultValue: property.default === undefined ? '' : code(inlineYaml(property.default)),
    allowed: allowedValues(property),
    description: String(property.description ?? referred(property, definitions)?.description ?? ''),
    example: code(`${key}: ${inlineYaml(exampleValue(key, property, examples))}`),
  }));
}

function referred(schema: JsonSchema, definitions: Readonly<Record<string, JsonSchema>>): JsonSchema | undefined {
  return typeof schema.$ref === 'string' ? definitions[schema.$ref.split('/').pop()!] : undefined;
}

/** The type in words: "string", "list of string", "mapping: name → number", a link to another section. */
export function typeOf(schema: JsonSchema): string {
  if (typeof schema.$ref === 'string') return REFERENCE_LINKS[schema.$ref.split('/').pop()!] ?? schema.$ref;
  if (schema.const !== undefined) return 'string';
  if (schema.if !== undefined && schema.then && schema.else) {
    return `${typeOf(schema.then as JsonSchema)}, or one ${typeOf(schema.else as JsonSchema)}`;
  }
  const type = schema.type;
  if (Array.isArray(type)) return joinWords(type.map(String), 'or');
  if (type === 'array') return `list of ${typeOf((schema.items ?? {}) as JsonSchema)}`;
  if (type === 'object' && isSchema(schema.additionalProperties)) {
    const value = schema.additionalProperties;
    const valueText = value.required && (value.required as string[]).includes('type') ? 'object with a `type`' : typeOf(value);
    return `mapping: name → ${valueText}`;
  }
  return typeof type === 'string' ? type : 'any';
}

/** Enumerations and bounds, in words. */
export function allowedValues(schema: JsonSchema): string {
  const own = constraints(schema);
  if (own) return own;
  if (schema.type === 'array' && isSchema(schema.items)) return prefixed('each item', constraints(schema.items), schema.minItems);
  if (isSchema(schema.additionalProperties)) return prefixed('each value', constraints(schema.additionalProperties));
  return '';
}

function constraints(schema: JsonSchema): string {
  if (schema.const !== undefined) return code(String(schema.const));
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => code(String(v))).join(', ');
  const parts: string[] = [];
  const { minimum, maximum, exclusiveMinimum, minLength, maxLength } = schema as Record<string, number | undefined>;
  if (minimum !== undefined && maximum !== undefined) parts.push(`${minimum} to ${maximum}`);
  else if (minimum !== undefined) parts.push(`≥ ${minimum}`);
  if (exclusiveMinimum !== undefined) parts.push(`> ${exclusiveMinimum}`);
  if (minLength !== undefined && minLength === maxLength) parts.push(`exactly ${minLength} character${minLength === 1 ? '' : 's'}`);
  else if (minLength === 1) parts.push('not empty');
  return parts.join(', ');
}

function prefixed(label: string, text: string, minItems?: unknown): string {
  const parts = [minItems === 1 ? 'at least one item' : '', text ? `${label}: ${text}` : ''].filter(Boolean);
  return parts.join('; ');
}

/** The schema's own example, else one written for the docs, else the default, else one built from the type. */
export function exampleValue(key: string, schema: JsonSchema, examples: Readonly<Record<string, unknown>>): unknown {
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if (key in examples) return examples[key];
  if (schema.default !== undefined) return schema.default;
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  switch (Array.isArray(schema.type) ? schema.type[0] : schema.type) {
    case 'boolean':
      return true;
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 1;
    case 'array':
      return [exampleValue(key, (schema.items ?? {}) as JsonSchema, {})];
    default:
      return `<${key}>`;
  }
}

/** One-line YAML, as the value would be written in flow style. */
export function inlineYaml(value: unknown): string {
  return stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trim();
}

export function code(text: string): string {
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** A markdown table; cells keep their markdown, and pipes and line breaks inside them are escaped. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

function joinWords(words: readonly string[], last: string): string {
  return words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} ${last} ${words[words.length - 1]}`;
}

function isSchema(value: unknown): value is JsonSchema {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
