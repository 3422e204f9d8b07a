/**
 * Rules use three-valued logic, as SQL does with NULL: a condition on a missing field, or on a
 * value that cannot be read as what the operator needs, is UNKNOWN rather than false. That is
 * what keeps `not: {field: value, operator: greater_than, ...}` from matching every record that
 * lacks the field. Only TRUE matches; a record whose outcome is UNKNOWN is counted as invalid.
 */
export const FALSE = 0;
export const TRUE = 1;
export const UNKNOWN = 2;
export type Truth = typeof FALSE | typeof TRUE | typeof UNKNOWN;

export function truth(condition: boolean): Truth {
  return condition ? TRUE : FALSE;
}

export function negate(t: Truth): Truth {
  return t === UNKNOWN ? UNKNOWN : t === TRUE ? FALSE : TRUE;
}
