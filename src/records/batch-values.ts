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
