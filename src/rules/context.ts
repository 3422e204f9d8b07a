/**
 * What a rule is evaluated with, handed to every predicate call: the cycle's "now", the same
 * for every record and rule of one cycle. Passed in rather than read from a shared clock, so
 * two evaluations (two cycles, a rule test beside a service) never see each other's time.
 */
export interface EvaluationContext {
  readonly now: number;
}
