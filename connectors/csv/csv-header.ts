/** A CSV header: naming its columns uniquely. */

export interface UniqueNames {
  /** One name per column, all different. */
  readonly names: string[];
  /** `a -> a_3` for each column that had to be renamed, in column order. */
  readonly renamed: string[];
}

/**
 * A repeated column name would make all but one of its columns unreachable by rules and produce
 * duplicate keys in JSON, so every occurrence after the first is renamed `name_N`, N counting
 * from 2 and skipping any name the header already holds or an earlier rename took: with
 * `a,a,a_2` the second `a` becomes `a_3` and the real `a_2` keeps its name. The first occurrence
 * of a name always keeps it.
 */
export function uniqueColumnNames(header: readonly string[]): UniqueNames {
  const taken = new Set(header);
  const seen = new Set<string>();
  /** Next N to try per repeated name, so a header of many repeats stays linear. */
  const nextSuffix = new Map<string, number>();
  const renamed: string[] = [];
  const names = header.map((name) => {
    if (!seen.has(name)) {
      seen.add(name);
      return name;
    }
    let n = nextSuffix.get(name) ?? 2;
    while (taken.has(`${name}_${n}`)) n++;
    const candidate = `${name}_${n}`;
    nextSuffix.set(name, n + 1);
    taken.add(candidate);
    renamed.push(`${name} -> ${candidate}`);
    return candidate;
  });
  return { names, renamed };
}
