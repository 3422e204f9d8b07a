import type { DedupEntry, DedupTable } from './dedup.js';
import { decodeSpool, encodeSpool } from './spool.js';
import { emptyState, type ServiceState } from './state-store.js';
import type { Watermark } from './watermark.js';
import { DamagedStateError } from './damaged-state-error.js';

/**
 * The state as named text documents, the unit every backend stores: `watermarks`, `dedup`, and
 * one `spool/<target>` per target with batches waiting. The folder keeps them as files, PostgreSQL
 * as rows, Redis as keys; the text is the same everywhere, so state moves between them by copying.
 */
export const WATERMARKS = 'watermarks';
export const DEDUP = 'dedup';
export const SPOOL_PREFIX = 'spool/';

const FORMAT = 1;

export function encodeWatermarks(state: ServiceState): string {
  return JSON.stringify({ format: FORMAT, datasources: Object.fromEntries(state.watermarks) }) + '\n';
}

export function encodeDedup(state: ServiceState): string {
  const rules: Record<string, Record<string, [number, number]>> = {};
  for (const [rule, table] of state.dedup) {
    rules[rule] = Object.fromEntries([...table].map(([key, e]: [string, DedupEntry]) => [key, [e.seen, e.exported]]));
  }
  return JSON.stringify({ format: FORMAT, rules }) + '\n';
}

export { DamagedStateError };

/** Parses a JSON document; `where` names it in the error (a file, a row, a key). */
export function parseDocument(text: string, where: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new DamagedStateError(`${where}: not valid JSON (${(err as Error).message}); restore it or remove it (its memory is then lost) to go on`);
  }
}

export function applyWatermarks(state: ServiceState, doc: Record<string, unknown> | undefined): void {
  for (const [name, mark] of Object.entries((doc?.datasources ?? {}) as Record<string, Watermark>)) state.watermarks.set(name, mark);
}

/**
 * The dedup memory as stored. A time ahead of now (written while the clock ran ahead, then set
 * back) is taken as now: kept as it was, a key would never be forgotten and its next incident
 * never alerted. A document of the wrong shape is refused with its place, like invalid JSON.
 */
export function applyDedup(state: ServiceState, doc: Record<string, unknown> | undefined, where = 'the dedup memory', now = Date.now()): void {
  const rules = doc?.rules ?? {};
  const wrongShape = (what: string) =>
    new DamagedStateError(`${where}: ${what} is not what this version writes ({"rules": {rule: {key: [seen, exported]}}}); restore it or remove it (its memory is then lost) to go on`);
  if (!isPlainObject(rules)) throw wrongShape('"rules"');
  for (const [rule, keys] of Object.entries(rules)) {
    if (!isPlainObject(keys)) throw wrongShape(`the entry of rule "${rule}"`);
    const entries: [string, number, number][] = [];
    for (const [key, times] of Object.entries(keys)) {
      if (!Array.isArray(times) || times.length !== 2 || !times.every((t) => typeof t === 'number' && Number.isFinite(t))) {
        throw wrongShape(`the key ${JSON.stringify(key)} of rule "${rule}"`);
      }
      entries.push([key, Math.min(times[0], now), Math.min(times[1], now)]);
    }
    const table: DedupTable = new Map();
    // Oldest seen first, as the in-memory order is.
    for (const [key, seen, exported] of entries.sort((a, b) => a[1] - b[1])) table.set(key, { seen, exported });
    state.dedup.set(rule, table);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The documents `next` changes against `previous`: text to write, or undefined to delete (a spool
 * that emptied). A spool untouched by the cycle is the same array, and is not written again.
 */
export function changedDocuments(next: ServiceState, previous: ServiceState): Map<string, string | undefined> {
  const docs = new Map<string, string | undefined>();
  for (const target of new Set([...next.spool.keys(), ...previous.spool.keys()])) {
    const batches = next.spool.get(target) ?? [];
    if (batches === previous.spool.get(target)) continue;
    docs.set(SPOOL_PREFIX + target, batches.length === 0 ? undefined : encodeSpool(batches));
  }
  docs.set(WATERMARKS, encodeWatermarks(next));
  docs.set(DEDUP, encodeDedup(next));
  return docs;
}

/** The state from its documents as stored; `where` says, for errors, where a document came from. */
export function stateFromDocuments(docs: Iterable<[string, string]>, where: (name: string) => string): ServiceState {
  const state = emptyState();
  for (const [name, text] of docs) {
    if (name === WATERMARKS) applyWatermarks(state, parseDocument(text, where(name)));
    else if (name === DEDUP) applyDedup(state, parseDocument(text, where(name)), where(name));
    else if (name.startsWith(SPOOL_PREFIX)) {
      const batches = decodeSpool(text, where(name));
      if (batches.length > 0) state.spool.set(name.slice(SPOOL_PREFIX.length), batches);
    }
  }
  return state;
}
