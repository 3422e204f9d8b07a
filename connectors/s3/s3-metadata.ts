/**
 * The user metadata of an object (x-amz-meta-*): the rules and datasources whose records it
 * holds, the run id, the format, the record count. It travels in HTTP headers, which carry
 * ASCII only, and S3 allows 2 KB of it in all, which an object of many rules (a key without
 * {rule}) can exceed: S3 would refuse the upload (MetadataTooLarge) and the run would fail.
 *
 * One scheme for every value: a list is its items joined with ",", and an item is written as it
 * is when it is printable ASCII without "," or "%" (nor a space at either end, which HTTP drops),
 * else percent-encoded whole (encodeURIComponent). So `value.split(',').map(decodeURIComponent)`
 * gives the names back, whatever they hold. A list that would not fit keeps its first names (in
 * the order their records came) and says how many it left out in `<list>s-omitted`.
 */
import { toWellFormed } from '../../src/template/escape.js';

/** S3's limit on user metadata: the UTF-8 bytes of every key and value. */
export const MAX_METADATA_BYTES = 2048;

/**
 * Counted with each key, to be safe: AWS does not say whether the x-amz-meta- prefix of the header
 * counts towards the 2 KB, and other S3 servers may count it.
 */
const HEADER_PREFIX = 'x-amz-meta-';

/** The record count is known only when the object ends: room for the largest is kept from the start, so the lists never change. */
const RECORDS_ROOM = entryBytes('records', String(Number.MAX_SAFE_INTEGER));

export interface MetadataSources {
  readonly rules: Iterable<string>;
  readonly datasources: Iterable<string>;
  readonly runId: string;
}

/** The metadata of an object, without its record count (added as `records` when it ends). */
export function objectMetadata(sources: MetadataSources, format: string): Record<string, string> {
  const fixed = { 'run-id': metadataItem(sources.runId), format };
  const room = MAX_METADATA_BYTES - RECORDS_ROOM - metadataBytes(fixed);
  const rules = [...sources.rules].map(metadataItem);
  const datasources = [...sources.datasources].map(metadataItem);
  const [ruleRoom, datasourceRoom] = shareRoom(room, listBytes('rule', rules), listBytes('datasource', datasources));
  return { ...listWithin('rule', rules, ruleRoom), ...listWithin('datasource', datasources, datasourceRoom), ...fixed };
}

/** One name as it is written in metadata (see the top of this file). */
export function metadataItem(name: string): string {
  const plain = /^[\x20-\x7e]*$/.test(name) && !/[,%]/.test(name) && name.trim() === name;
  return plain ? name : encodeURIComponent(toWellFormed(name));
}

/** The size S3 counts for these entries. */
export function metadataBytes(metadata: Readonly<Record<string, string>>): number {
  return Object.entries(metadata).reduce((sum, [key, value]) => sum + entryBytes(key, value), 0);
}

function entryBytes(key: string, value: string): number {
  return Buffer.byteLength(HEADER_PREFIX + key) + Buffer.byteLength(value);
}

function listBytes(key: string, items: readonly string[]): number {
  return entryBytes(key, items.join(','));
}

/**
 * Splits the room between the two lists: each gets what it needs when both fit; otherwise a list
 * that needs less than half keeps all of it, and the other gets the rest.
 */
function shareRoom(room: number, first: number, second: number): [number, number] {
  if (first + second <= room) return [first, second];
  const half = Math.floor(room / 2);
  if (first <= half) return [first, room - first];
  if (second <= half) return [room - second, second];
  return [half, room - half];
}

/** The list as one entry, and when not every item fits in `room`, as many as do and the `<key>s-omitted` count. */
function listWithin(key: string, items: readonly string[], room: number): Record<string, string> {
  if (listBytes(key, items) <= room) return { [key]: items.join(',') };
  const omittedKey = `${key}s-omitted`;
  let left = room - entryBytes(omittedKey, String(items.length)) - entryBytes(key, '');
  const kept: string[] = [];
  for (const item of items) {
    const cost = Buffer.byteLength(item) + (kept.length > 0 ? 1 : 0);
    if (cost > left) break;
    kept.push(item);
    left -= cost;
  }
  return { [key]: kept.join(','), [omittedKey]: String(items.length - kept.length) };
}
