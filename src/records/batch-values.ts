/**
 * Most values (records times fields) a datasource hands over in one batch, whatever
 * settings.batch_size says. A batch's memory grows with its width as much as with its rows:
 * 2,000 rows of 1,000 columns are two million values, and a CSV file that wide took half a
 * gigabyte to read with nothing matching. At the default batch size this cuts only batches of
 * more than 50 fields.
 */
export const BATCH_VALUES_AT_MOST = 100_000;

/** Rows per batch for records of `width` fields: batch_size, fewer for wide records. */
export function rowsPerBatch(batchSize: number, width: number): number {
  return Math.max(1, Math.min(batchSize, Math.floor(BATCH_VALUES_AT_MOST / Math.max(1, width))));
}

/**
 * Rough bytes of a row's values (UTF-16 units of text, 8 per other scalar; field names too for an
 * object row): what batch_bytes and the spool's bounds count. Approximate by design: the count
 * must stay cheaper than the work it sizes.
 */
export function rowBytes(row: unknown): number {
  let total = 0;
  if (Array.isArray(row)) {
    for (let c = 0; c < row.length; c++) total += typeof row[c] === 'string' ? row[c].length + 1 : 9;
  } else if (row !== null && typeof row === 'object') {
    for (const key in row) {
      const value = (row as Record<string, unknown>)[key];
      total += key.length + (typeof value === 'string' ? value.length : typeof value === 'object' && value !== null ? 64 : 8) + 4;
    }
  } else total += 16;
  return total;
}

export function rowsBytes(rows: readonly unknown[]): number {
  let total = 0;
  for (const row of rows) total += rowBytes(row);
  return total;
}
