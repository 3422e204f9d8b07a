/** What one rule did in one cycle. */
export interface RuleStats {
  /** Records the rule evaluated (over all its datasources). */
  read: number;
  matched: number;
  /** Records the rule could not decide: a field it needs was missing or not of the right type. They never match. */
  invalid: number;
  /** Deliveries that reached a target (a record sent to two targets counts twice). */
  exported: number;
  /** Deliveries that did not. */
  failed: number;
  /** Matches not exported because the same alert already was (dedup_key, realert). */
  deduplicated: number;
}

export interface EndpointStatus {
  ok: boolean;
  /** Rows read (datasource) or records accepted (target). */
  records: number;
  error?: string;
  /** Datasource with `incremental`: records read but skipped as already processed. */
  skipped?: number;
  /** Target: writes tried again. */
  retries?: number;
}

export interface CycleReport {
  readonly runId: string;
  readonly startedAt: string;
  durationMs: number;
  readonly rules: Map<string, RuleStats>;
  readonly datasources: Map<string, EndpointStatus>;
  readonly targets: Map<string, EndpointStatus>;
  /** The cycle was cut short before its output was made visible: targets discarded what they had. */
  cancelled: boolean;
  /** Per rule and target: what was exported and what failed (metrics). */
  deliveries?: Map<string, { readonly rule: string; readonly target: string; exported: number; failed: number }>;
  /** The state (watermarks, dedup keys, spool) was saved after this cycle. */
  stateCommitted?: boolean;
  /** Saving the state failed: the cycle's records are read and sent again. */
  stateError?: string;
  /** The state's lock was lost (its server session ended, a Redis lock expired): nothing more can be saved by this process. */
  stateLost?: boolean;
  /** Records waiting in the dead-letter spool after the cycle, per target (set when there is state). */
  spool?: Map<string, number>;
}

export function emptyRuleStats(): RuleStats {
  return { read: 0, matched: 0, invalid: 0, exported: 0, failed: 0, deduplicated: 0 };
}

/** True when every datasource was read and every target took its records. */
export function cycleSucceeded(report: CycleReport): boolean {
  return report.stateError === undefined && [...report.datasources.values(), ...report.targets.values()].every((s) => s.ok);
}
