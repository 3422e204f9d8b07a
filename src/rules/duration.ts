const UNIT_MILLIS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/;
const COMPOUND = /^(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))+\s*$/;
const PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/g;

/**
 * "30s", "15m", "1h", "7d", "2w", "500ms", or a compound such as "1h30m"; undefined when the
 * text is not a duration. Bare numbers are refused on purpose: "within: 60" is ambiguous.
 */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const simple = DURATION.exec(text);
  if (simple) return +simple[1]! * UNIT_MILLIS[simple[2]!]!;
  if (!COMPOUND.test(text)) return undefined;
  let total = 0;
  for (const part of text.matchAll(PART)) total += +part[1]! * UNIT_MILLIS[part[2]!]!;
  return total;
}

export const DURATION_HINT = 'a duration such as "30s", "15m", "1h", "7d" or "1h30m"';
