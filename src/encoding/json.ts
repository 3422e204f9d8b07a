import type { MatchBatch } from '../../connectors/types.js';
import { exportRecords } from '../records/export-record.js';
import { jsonValue, OUTPUT_PIECE } from './ndjson.js';

/** One JSON array over a stream of batches: `[`, the records separated by commas, `]`. */
export class JsonArrayEncoder {
  #needsComma = false;

  constructor(private readonly includeMetadata: boolean) {}

  readonly start = '[\n';
  readonly end = '\n]\n';

  /** Appending to an array that already holds records: the next one needs a comma first. */
  continueNonEmpty(): void {
    this.#needsComma = true;
  }

  encode(batch: MatchBatch): string[] {
    const pieces: string[] = [];
    let out = '';
    for (const record of exportRecords(batch, this.includeMetadata)) {
      out += (this.#needsComma ? ',\n' : '') + jsonValue(record);
      this.#needsComma = true;
      if (out.length >= OUTPUT_PIECE) {
        pieces.push(out);
        out = '';
      }
    }
    if (out.length > 0) pieces.push(out);
    return pieces;
  }
}
