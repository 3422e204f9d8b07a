/**
 * The number written by `count` ASCII digits at `start`, or -1 if one is not a digit. The fast
 * timestamp readers (rules, PostgreSQL's text) read fixed-width fields with it instead of a
 * regular expression and Number().
 */
export function asciiDigits(s: string, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}
