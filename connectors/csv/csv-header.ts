/** A CSV header: reading it from a file, and naming its columns uniquely. */

import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { createCsvTokenizer, CsvSyntaxError, type CsvDialect } from './csv-tokenizer.js';

/** How much of a file may hold its header: past this, the first record is taken as broken (a quote left open). */
export const HEADER_LIMIT = 1024 * 1024;
const HEADER_CHUNK = 64 * 1024;

/**
 * The first record of a UTF-8 CSV file, as raw field values (a byte order mark dropped, blank
 * lines before it skipped). A quoted name may hold line breaks, so this reads through the
 * tokenizer, a chunk at a time, until the first record is complete; [] for a file without one.
 */
export async function readCsvHeader(file: string, dialect: CsvDialect): Promise<string[]> {
  const tokenizer = createCsvTokenizer(dialect);
  const decoder = new StringDecoder('utf8');
  const handle = await open(file, 'r');
  try {
    const chunk = Buffer.alloc(HEADER_CHUNK);
    for (let at = 0; at < HEADER_LIMIT; ) {
      const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, HEADER_LIMIT - at), at);
      if (bytesRead === 0) return [...tokenizer.push(decoder.end()), ...tokenizer.end()][0] ?? [];
      let text = decoder.write(chunk.subarray(0, bytesRead));
      if (at === 0 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      at += bytesRead;
      const [header] = tokenizer.push(text);
      if (header) return header;
    }
    throw new Error(
      `${file}: its first record, the CSV header, does not end within ${HEADER_LIMIT / 1024 / 1024} MiB (a quote left open?); ` +
        'repair the header, or move the file aside so this run starts a new one',
    );
  } catch (err) {
    if (err instanceof CsvSyntaxError) throw new Error(`${file}: reading its CSV header: ${err.message}`);
    throw err;
  } finally {
    await handle.close();
  }
}

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
