import { SINKS, SOURCES } from '../../connectors/index.js';
import type { ConnectorSpec, JsonSchema } from '../../connectors/types.js';
import { deliverySchema, duration } from '../delivery/policy.js';
import { OPERATORS, OPERATOR_NAMES } from '../rules/operators.js';
import { stateSettingSchema } from '../state/state-schema.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS_DEFAULTS = { concurrency: 4, batch_size: 2000, log_level: 'info', shutdown_timeout: '60s', state_dir: '.state' } as const;

const commonKeys = (spec: ConnectorSpec): Record<string, JsonSchema> => ({
  description: { type: 'string', description: 'Free text for the people reading the config.' },
  ...(spec.kind === 'target'
    ? {
        include_metadata: {
          type: 'boolean',
          default: true,
          description: 'Add _rule, _datasource, _run_id and _matched_at (ISO 8601) to every exported record.',
        },
        ...deliverySchema(spec.batching),
      }
    : {
        incremental: {
          type: 'object',
          additionalProperties: false,
          required: ['field'],
          description:
            'Process only records newer than the last cycle: records whose `field` is at or below the watermark (the largest value processed so far, kept in settings.state_dir) are skipped; records at exactly the watermark are processed once each. See docs/service.md.',
          properties: {
            field: { type: 'string', minLength: 1, description: 'The field that grows with each new record: a timestamp or a number.', examples: ['created_at'] },
          },
          examples: [{ field: 'created_at' }],
        },
      }),
});

/** A connector's own schema closed over: `type` fixed, common keys added, unknown keys refused. */
function connectorSchema(spec: ConnectorSpec): JsonSchema {
  const own = spec.configSchema as { properties?: Record<string, JsonSchema> };
  return {
    ...spec.configSchema,
    title: `${spec.type} ${spec.kind === 'source' ? 'datasource' : 'export target'}`,
    description: spec.summary,
    additionalProperties: false,
    required: ['type', ...((spec.configSchema.required as string[] | undefined) ?? [])],
    properties: {
      type: { const: spec.type, description: `Connector type: \`${spec.type}\`.` },
      ...commonKeys(spec),
      ...own.properties,
    },
  };
}

/**
 * A map of named connectors whose `type` picks the schema that applies. if/then (rather than
 * oneOf) keeps the errors to the one branch the user meant.
 */
function connectorMap(specs: readonly ConnectorSpec[], kind: string, definitionPrefix: string): JsonSchema {
  return {
    type: 'object',
    description: `Named ${kind}s; each has a \`type\`: ${specs.map((s) => s.type).join(', ')}.`,
    propertyNames: { minLength: 1 },
    additionalProperties: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string', enum: specs.map((s) => s.type), description: `The ${kind} type.` } },
      allOf: specs.map((s) => ({
        if: { properties: { type: { const: s.type } }, required: ['type'] },
        then: { $ref: `#/definitions/${definitionPrefix}_${s.type}` },
      })),
    },
  };
}

const stringList = (description: string): JsonSchema => ({
  type: 'array',
  minItems: 1,
  items: { type: 'string', minLength: 1 },
  description,
});

const conditionSchema: JsonSchema = {
  type: 'object',
  description:
    'A condition: a leaf {field, operator, value}, or {all: [...]}, {any: [...]}, {not: {...}} nesting other conditions to any depth.',
  additionalProperties: false,
  properties: {
    field: { type: 'string', minLength: 1, description: 'The record field to test; dotted paths reach into nested JSON.', examples: ['value'] },
    operator: {
      type: 'string',
      enum: [...OPERATOR_NAMES],
      description: 'How to test it: ' + OPERATORS.map((o) => o.name).join(', ') + '.',
    },
    value: { description: 'What to test against; its form depends on the operator (a number, a string, a list, a duration).' },
    all: { type: 'array', minItems: 1, items: { $ref: '#/definitions/condition' }, description: 'All of these must hold (AND).' },
    any: { type: 'array', minItems: 1, items: { $ref: '#/definitions/condition' }, description: 'At least one of these must hold (OR).' },
    not: { $ref: '#/definitions/condition', description: 'This must not hold (NOT).' },
  },
};

export const ruleSchema: JsonSchema = {
  type: 'object',
  title: 'processing rule',
  description: 'A threshold rule: which records match, from which datasources, and where the matches go.',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, description: 'Unique name; shown in logs, summaries and exported records (_rule).', examples: ['high_value_alerts'] },
    description: { type: 'string', description: 'Free text.' },
    enabled: { type: 'boolean', default: true, description: 'false keeps the rule in the config without running it.' },
    datasource: { type: 'string', minLength: 1, description: 'The one datasource the rule reads (default: every datasource).' },
    datasources: stringList('The datasources the rule reads (default: every datasource).'),
    export_target: { type: 'string', minLength: 1, description: 'The export target that receives the matches.' },
    export_targets: stringList('Several export targets; each receives every match.'),
    threshold_field: { type: 'string', minLength: 1, description: 'Older single-condition form: the field to test.', examples: ['value'] },
    threshold_type: { type: 'string', enum: [...OPERATOR_NAMES], description: 'Older single-condition form: the operator.', examples: ['greater_than'] },
    threshold_value: { description: 'Older single-condition form: the value (for within_hours, a number of hours).', examples: [1000] },
    dedup_key: stringList(
      'The fields that name "the same alert" (default: every field of the record). A record whose key was already exported is not exported again while it keeps matching, or within `realert`.',
    ),
    realert: duration(
      'Export a record that keeps matching again once this long has passed since it was last exported; 0s exports every match every cycle. Without it, a record is exported once and again only after a cycle in which it did not match',
      '10m',
    ),
    conditions: {
      description: 'A list of conditions that must all hold, or one condition tree using all / any / not.',
      if: { type: 'array' },
      then: { type: 'array', items: { $ref: '#/definitions/condition' } },
      else: { $ref: '#/definitions/condition' },
    },
  },
};

const settingsSchema: JsonSchema = {
  type: 'object',
  description: 'How the processor runs.',
  additionalProperties: false,
  properties: {
    concurrency: {
      type: 'integer',
      minimum: 1,
      default: SETTINGS_DEFAULTS.concurrency,
      description: 'How many datasources are read at the same time.',
    },
    batch_size: {
      type: 'integer',
      minimum: 1,
      default: SETTINGS_DEFAULTS.batch_size,
      description: 'Records per batch between a datasource, the rules and the targets. A batch from a CSV file or a PostgreSQL query also stops at 100,000 values, so records of hundreds of fields come in fewer rows per batch.',
    },
    log_level: { type: 'string', enum: [...LOG_LEVELS], default: SETTINGS_DEFAULTS.log_level, description: 'Least severe log level written (the --log-level flag wins).' },
    shutdown_timeout: duration(
      "In --continuous mode, how long the running cycle may go on after SIGTERM before it is cancelled; keep it 25s below the service manager's stop timeout (systemd: TimeoutStopSec), which covers the cancelled cycle's 10s grace and the wait for an S3 target making its objects visible",
      '60s',
      SETTINGS_DEFAULTS.shutdown_timeout,
    ),
    state_dir: {
      type: 'string',
      minLength: 1,
      default: SETTINGS_DEFAULTS.state_dir,
      description:
        'Folder (relative to this file) where watermarks, dedup keys and the dead-letter spool are kept across cycles and restarts; created if missing. Under systemd, point it at the StateDirectory (e.g. /var/lib/threshold-processor).',
      examples: ['/var/lib/threshold-processor'],
    },
    state: stateSettingSchema,
    metrics: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      description: 'Serve Prometheus metrics on /metrics and health on /healthz (the --metrics-port flag wins over port).',
      properties: {
        port: { type: 'integer', minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free one (logged).', examples: [9464] },
        host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'Address to listen on; 0.0.0.0 to be scraped from other machines.' },
      },
    },
  },
};

/** The whole config schema, composed from the connectors' own schemas: the one source of truth for validation, editors and docs. */
export function buildConfigSchema(): JsonSchema {
  const definitions: Record<string, JsonSchema> = { rule: ruleSchema, condition: conditionSchema, settings: settingsSchema };
  for (const s of SOURCES) definitions[`source_${s.type}`] = connectorSchema(s);
  for (const s of SINKS) definitions[`target_${s.type}`] = connectorSchema(s);
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'urn:threshold-processor:config',
    title: 'threshold-processor config',
    description: 'Datasources to read, threshold rules to apply, and export targets for the matches.',
    type: 'object',
    additionalProperties: false,
    required: ['datasources', 'export_targets'],
    properties: {
      datasources: connectorMap(SOURCES, 'datasource', 'source'),
      processing_rules: {
        type: 'array',
        items: { $ref: '#/definitions/rule' },
        default: [],
        description: 'Rules written in this file; rules in rule files are added to them. An empty `processing_rules:` means none.',
      },
      export_targets: connectorMap(SINKS, 'export target', 'target'),
      rules_dir: {
        type: 'string',
        default: 'rules',
        description:
          'Folder (relative to this file) whose *.yaml / *.yml files, at any depth, hold more rules; *.test.yaml files are rule tests and are not loaded as rules, and names starting with a dot (a Kubernetes ConfigMap\'s ..data, editors\' lock files) are skipped. When set, the folder must exist.',
      },
      include: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        description: 'Globs (relative to this file) of further rule files, e.g. ["teams/*/rules.yaml"]; a glob that matches no file is an error.',
      },
      settings: { $ref: '#/definitions/settings' },
    },
    definitions,
  };
}

/** The schema of a rule file (rules/*.yaml): a list of rules, or processing_rules: [rules]. For editors. */
export function buildRuleFileSchema(): JsonSchema {
  const rules = { type: 'array', items: { $ref: '#/definitions/rule' }, description: 'Processing rules, merged into the config\'s.' };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'urn:threshold-processor:rules',
    title: 'threshold-processor rule file',
    description: 'A list of processing rules, or a mapping with processing_rules: [...]; merged into the config that loads it.',
    anyOf: [rules, { type: 'object', additionalProperties: false, required: ['processing_rules'], properties: { processing_rules: rules } }],
    definitions: { rule: ruleSchema, condition: conditionSchema },
  };
}
