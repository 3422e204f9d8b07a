/**
 * The commands one batch becomes, per mode, before anything is sent: each command knows which
 * records it carries, so that when part of a pipeline fails the write can say which records
 * landed. Pure functions of the records: no connection here.
 */
import type { MatchBatch } from '../types.js';
import { jsonValue } from '../../src/encoding/ndjson.js';
import { exportRecords, METADATA_FIELDS, metadataOf, withRows } from '../../src/records/export-record.js';
import { ColumnLayout } from '../../src/records/layout.js';

export type RedisMode = 'hash' | 'list' | 'string' | 'stream';

export interface CommandOptions {
  readonly mode: RedisMode;
  /** Seconds; undefined: keys do not expire. */
  readonly ttl: number | undefined;
  /** list: LTRIM to this many entries; stream: MAXLEN ~ this many. */
  readonly maxLength: number | undefined;
  readonly push: 'left' | 'right';
  /** The SHA1 of WRITE_THEN_EXPIRE, loaded on the connection: used when keys must expire. */
  readonly scriptSha: string | undefined;
}

/** A record ready to be written: its position in the batch and its key, prefix included. */
export interface KeyedRecord {
  readonly index: number;
  readonly key: string;
  readonly record: Readonly<Record<string, unknown>>;
}

export interface PlannedCommand {
  /** Command name and arguments, as sent. */
  readonly args: readonly [string, ...(string | number)[]];
  readonly key: string;
  /** Positions in the batch of the records this command stores. */
  readonly records: readonly number[];
  /** A command sent right after, whose failure does not undo the write (a list's LTRIM when no TTL is set). */
  readonly followUp?: readonly [string, ...(string | number)[]];
}

/**
 * Writes, then trims and sets the TTL, in one step on the server. Sent as separate pipelined
 * commands, an EXPIRE would still run after its write failed (a key holding another type, say
 * someone else's string) and put a TTL on a key this target never wrote.
 *
 * KEYS[1]: the key. ARGV[1]: TTL seconds ('' for none). ARGV[2], ARGV[3]: LTRIM range ('' for
 * none). ARGV[4]: the write command; ARGV[5...]: its arguments after the key.
 */
export const WRITE_THEN_EXPIRE = `local reply = redis.call(ARGV[4], KEYS[1], unpack(ARGV, 5))
if ARGV[2] ~= '' then redis.call('LTRIM', KEYS[1], ARGV[2], ARGV[3]) end
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return reply`;

/** Values per RPUSH/LPUSH: keeps each command (and the script's unpack, limited to ~8000) bounded. */
export const PUSH_CHUNK = 1000;

export function planCommands(records: readonly KeyedRecord[], options: CommandOptions): PlannedCommand[] {
  switch (options.mode) {
    case 'hash':
      return hashCommands(records, options);
    case 'string':
    {
      const ttl = options.ttl;
      if (ttl === undefined) return msetCommands(records);
      return records.map((r) => command({ ...options, scriptSha: undefined }, r.key, ['SET', jsonValue(r.record), 'EX', ttl], [r.index]));
    }
    case 'stream':
      return records.flatMap((r) => {
        const fields = flatFields(r.record);
        if (fields.length === 0) return [];
        const trim = options.maxLength !== undefined ? ['MAXLEN', '~', options.maxLength] : [];
        return [command(options, r.key, ['XADD', ...trim, '*', ...fields], [r.index])];
      });
    case 'list':
      return listCommands(records, options);
  }
}

/** One HSET per record; built straight into the arguments when no script wraps them (the common case: one array per record, not three). */
function hashCommands(records: readonly KeyedRecord[], options: CommandOptions): PlannedCommand[] {
  const out: PlannedCommand[] = [];
  const scripted = options.ttl !== undefined && options.scriptSha !== undefined;
  for (const r of records) {
    if (scripted) {
      const fields = flatFields(r.record);
      if (fields.length > 0) out.push(command(options, r.key, ['HSET', ...fields], [r.index]));
      continue;
    }
    const args: [string, ...string[]] = ['HSET', r.key];
    flatFields(r.record, args);
    // Redis has no empty hash: a record whose every field is null stores nothing.
    if (args.length > 2) out.push({ args, key: r.key, records: [r.index] });
  }
  return out;
}

/**
 * Strings without a TTL: one MSET per chunk of records instead of a SET each. SET (and so MSET)
 * overwrites a key of any type and cannot fail for one key alone, so nothing is lost in knowing
 * less about which record failed; fewer commands made string mode several times faster.
 */
function msetCommands(records: readonly KeyedRecord[]): PlannedCommand[] {
  const out: PlannedCommand[] = [];
  for (let i = 0; i < records.length; i += PUSH_CHUNK) {
    const chunk = records.slice(i, i + PUSH_CHUNK);
    const args: [string, ...string[]] = ['MSET'];
    for (const r of chunk) args.push(r.key, jsonValue(r.record));
    out.push({ args, key: chunk[0]!.key, records: chunk.map((r) => r.index) });
  }
  return out;
}

/** Records for one key go out in one push (in chunks), so a list gets one LTRIM and one EXPIRE per chunk instead of per record. */
function listCommands(records: readonly KeyedRecord[], options: CommandOptions): PlannedCommand[] {
  const byKey = new Map<string, KeyedRecord[]>();
  for (const r of records) {
    const list = byKey.get(r.key);
    if (list) list.push(r);
    else byKey.set(r.key, [r]);
  }
  const push = options.push === 'left' ? 'LPUSH' : 'RPUSH';
  const out: PlannedCommand[] = [];
  for (const [key, list] of byKey) {
    for (let i = 0; i < list.length; i += PUSH_CHUNK) {
      const chunk = list.slice(i, i + PUSH_CHUNK);
      out.push(command(options, key, [push, ...chunk.map((r) => jsonValue(r.record))], chunk.map((r) => r.index), true));
    }
  }
  return out;
}

/** The range LTRIM keeps: the newest max_length entries, at the end the pushes add to. */
function trimRange(options: CommandOptions): [number, number] | undefined {
  if (options.maxLength === undefined) return undefined;
  return options.push === 'left' ? [0, options.maxLength - 1] : [-options.maxLength, -1];
}

function command(options: CommandOptions, key: string, write: [string, ...(string | number)[]], records: number[], trims = false): PlannedCommand {
  const range = trims ? trimRange(options) : undefined;
  if (options.ttl !== undefined && options.scriptSha !== undefined) {
    const [name, ...rest] = write;
    const args: [string, ...(string | number)[]] = ['EVALSHA', options.scriptSha, 1, key, options.ttl, range?.[0] ?? '', range?.[1] ?? '', name, ...rest];
    return { args, key, records };
  }
  // Without a TTL the trim can be its own command: after a failed push (WRONGTYPE) it fails alike, harmlessly.
  return { args: [write[0], key, ...write.slice(1)], key, records, ...(range ? { followUp: ['LTRIM', key, range[0], range[1]] } : {}) };
}

/**
 * A record as hash fields (and stream entry fields): `field, value, ...`. Text as it is, numbers
 * and booleans as they print, objects and lists as JSON, dates in ISO 8601. Null fields are
 * left out: Redis has no null, and a missing field reads as nil, as null should. Appended to `out` when given.
 */
export function flatFields(record: Readonly<Record<string, unknown>>, out: string[] = []): string[] {
  for (const name of Object.keys(record)) {
    const value = record[name];
    if (value === null || value === undefined) continue;
    out.push(name, fieldText(value));
  }
  return out;
}

function fieldText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  return jsonValue(value);
}

/**
 * The batch's records (rows `from` to `to`) as exportRecords gives them. A CSV row's record is a fresh object, so the
 * metadata is added to it in place instead of copying it into another one: half the objects per
 * record, which showed as garbage-collection time in the hash-mode profile.
 */
export function recordsOf(batch: MatchBatch, includeMetadata: boolean, from = 0, to = batch.rows.length): Record<string, unknown>[] {
  const { layout, rows } = batch;
  if (!includeMetadata || !(layout instanceof ColumnLayout) || layout.columns.some((c) => c === '__proto__' || (METADATA_FIELDS as readonly string[]).includes(c))) {
    return exportRecords(withRows(batch, rows.slice(from, to)), includeMetadata);
  }
  const meta = metadataOf(batch);
  const out: Record<string, unknown>[] = new Array(to - from);
  for (let i = from; i < to; i++) {
    const record = layout.toRecord(rows[i]);
    record._rule = meta._rule;
    record._datasource = meta._datasource;
    record._run_id = meta._run_id;
    record._matched_at = meta._matched_at;
    out[i - from] = record;
  }
  return out;
}
