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
}

export interface EndpointStatus {
  ok: boolean;
  /** Rows read (datasource) or records accepted (target). */
  records: number;
  error?: string;
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
}

export function emptyRuleStats(): RuleStats {
  return { read: 0, matched: 0, invalid: 0, exported: 0, failed: 0 };
}

/** True when every datasource was read and every target took its records. */
export function cycleSucceeded(report: CycleReport): boolean {
  return [...report.datasources.values(), ...report.targets.values()].every((s) => s.ok);
}
