import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { once } from 'node:events';
import { csvLine } from '../../src/encoding/csv.js';
import { CancelledError } from '../../src/errors.js';
import { createCsvTokenizer, NO_RECORD_LIMITS } from '../csv/csv-tokenizer.js';

/**
 * Rewrites a CSV file we wrote so that its header is `columns` and every row has as many cells:
 * rows written before later records added columns get empty cells (null) at the end. The first
 * record of the file is its old header and is replaced. Streams, so the file may be any size.
 */
export async function padCsvFile(file: string, columns: readonly string[], signal: AbortSignal): Promise<void> {
  const padded = `${file}.pad`;
  const out = createWriteStream(padded, { highWaterMark: 1024 * 1024 });
  // Our own output: its records were whole in memory when written, whatever their size.
  const tokenizer = createCsvTokenizer({ delimiter: ',', quote: '"' }, NO_RECORD_LIMITS);
  const decoder = new StringDecoder('utf8');
  let header = true;
  let text = csvLine(columns);
  const emit = async (rows: string[][]) => {
    for (const row of rows) {
      if (header) {
        header = false;
        continue;
      }
      text += csvLine(row.length >= columns.length ? row : [...row, ...new Array(columns.length - row.length).fill(null)]);
      if (text.length >= 64 * 1024) {
        if (!out.write(text)) await once(out, 'drain');
        text = '';
      }
    }
  };
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 })) {
      if (signal.aborted) throw new CancelledError(`padding ${file}`);
      await emit(tokenizer.push(decoder.write(chunk as Buffer)));
    }
    await emit(tokenizer.push(decoder.end()));
    await emit(tokenizer.end());
    out.end(text);
    await once(out, 'finish');
    await rename(padded, file);
  } catch (err) {
    out.destroy();
    await rm(padded, { force: true });
    throw err;
  }
}
