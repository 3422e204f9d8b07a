import type { Rule } from '../rules/rule.js';
import type { DedupPolicy } from '../state/dedup.js';
import type { StateConfig } from '../state/state-backend.js';

export interface Settings {
  readonly concurrency: number;
  readonly batch_size: number;
  readonly log_level: string;
  /** A duration: how long a cycle may go on after SIGTERM in --continuous mode. */
  readonly shutdown_timeout: string;
  /** Where state is kept, as written (relative to the config's folder). */
  readonly state_dir: string;
  /** Keeps the state in PostgreSQL or Redis instead of state_dir. */
  readonly state?: StateConfig;
  readonly metrics?: { readonly port: number; readonly host?: string };
}

/** A datasource or export target as written: its `type` and the connector's own keys. */
export interface ConnectorConfig {
  readonly type: string;
  readonly description?: string;
  readonly include_metadata?: boolean;
  readonly [key: string]: unknown;
}

/** A config that passed every check, ready to run. Frozen: a reload builds a new one. */
export interface LoadedConfig {
  /** The config file as given on the command line. */
  readonly file: string;
  /** Its folder: relative paths in it resolve from here. */
  readonly dir: string;
  readonly settings: Settings;
  readonly datasources: Readonly<Record<string, ConnectorConfig>>;
  readonly targets: Readonly<Record<string, ConnectorConfig>>;
  readonly rules: readonly Rule[];
  /** The rule files merged in, in load order. */
  readonly ruleFiles: readonly string[];
  /** The rules folder (`rules_dir`, default `rules`), absolute, whether it exists or not. */
  readonly rulesDir: string;
  /** The `include` globs as written, relative to `dir`. */
  readonly include: readonly string[];
  /** Per file read (the config and each rule file, absolute): the digest of what it held, for --watch to reload only on a real change. */
  readonly contentDigests: ReadonlyMap<string, string>;
  /** Per rule: how repeated alerts are suppressed (dedup_key, realert). Absent: every rule dedups on all fields. */
  readonly dedup?: ReadonlyMap<string, DedupPolicy>;
  /** Per datasource with `incremental`: the field that orders its records. */
  readonly incremental?: ReadonlyMap<string, string>;
}
