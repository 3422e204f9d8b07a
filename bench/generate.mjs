// Seeded sensor-reading CSV for the benchmark: `id,sensor,value,status,created_at`.
//
// Usable as a module (`ensureDataset`) and from the command line:
//   node bench/generate.mjs [rows] [out.csv]
//
// Every column is drawn from a fixed distribution so the bench can pick thresholds that select
// a known share of rows (see lib/workload.mjs); the same seed and row count give the same values.
// `created_at` is spread over the two hours before an anchor time, so the share of rows inside
// a "within 1h" window is known for any clock reading (see `withinShare`).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bump when the file layout or a distribution changes, so older files are not reused. */
export const GENERATOR_VERSION = 1;
export const DEFAULT_SEED = 0x5eed2026;
export const SENSOR_COUNT = 100;
/** Status values and their shares; the rules in lib/workload.mjs are disjoint by status. */
export const STATUS_SHARES = Object.freeze({ active: 0.4, idle: 0.35, error: 0.15, maintenance: 0.1 });
/** Values are uniform cents in [0, VALUE_MAX), written with two decimals. */
export const VALUE_MAX = 1000;
export const TIME_SPREAD_MS = 2 * 3600_000;
/** An anchor older than this is regenerated: past it, too few rows fall inside the 1h window. */
export const MAX_ANCHOR_AGE_MS = 30 * 60_000;

/** mulberry32: tiny, fast and good enough to make uniform test data reproducible. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATUS_TABLE = Object.entries(STATUS_SHARES);

function pickStatus(u) {
  let acc = 0;
  for (const [name, share] of STATUS_TABLE) {
    acc += share;
    if (u < acc) return name;
  }
  return STATUS_TABLE[STATUS_TABLE.length - 1][0];
}

function formatCents(cents) {
  const frac = cents % 100;
  return `${(cents - frac) / 100}.${frac < 10 ? '0' : ''}${frac}`;
}

/** One CSV line per row; the draws happen in a fixed order so the file depends only on the seed. */
function formatRow(id, next, anchorMs) {
  const sensor = Math.floor(next() * SENSOR_COUNT);
  const cents = Math.floor(next() * VALUE_MAX * 100);
  const status = pickStatus(next());
  const createdAt = anchorMs - Math.floor(next() * TIME_SPREAD_MS);
  return `${id},sensor-${sensor},${formatCents(cents)},${status},${new Date(createdAt).toISOString()}\n`;
}

/** Writes the CSV in large chunks (synchronous writes: the generator is not what is measured). */
export function generateCsv({ path, rows, seed = DEFAULT_SEED, anchorMs }) {
  mkdirSync(dirname(path), { recursive: true });
  const next = mulberry32(seed);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, 'id,sensor,value,status,created_at\n');
    let chunk = '';
    for (let id = 1; id <= rows; id++) {
      chunk += formatRow(id, next, anchorMs);
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    if (chunk) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  return statSync(path).size;
}

function sidecarPath(csvPath) {
  return `${csvPath}.json`;
}

function readSidecar(csvPath) {
  try {
    return JSON.parse(readFileSync(sidecarPath(csvPath), 'utf8'));
  } catch {
    return undefined;
  }
}

/** A file is reused only if it was written by this generator version with the same rows and seed, is intact, and is recent enough. */
function reusable(meta, csvPath, { rows, seed, now }) {
  if (!meta || !existsSync(csvPath)) return false;
  if (meta.version !== GENERATOR_VERSION || meta.rows !== rows || meta.seed !== seed) return false;
  if (statSync(csvPath).size !== meta.bytes) return false;
  return now - meta.anchorMs <= MAX_ANCHOR_AGE_MS && meta.anchorMs <= now;
}

/**
 * Returns `{path, rows, seed, anchorMs, bytes, generated}` for a dataset, generating it (with
 * `now` as the anchor) unless a matching one already exists.
 */
export function ensureDataset({ path, rows, seed = DEFAULT_SEED, now = Date.now(), force = false }) {
  const meta = readSidecar(path);
  if (!force && reusable(meta, path, { rows, seed, now })) return { ...meta, path, generated: false };
  const bytes = generateCsv({ path, rows, seed, anchorMs: now });
  const fresh = { version: GENERATOR_VERSION, rows, seed, anchorMs: now, anchorIso: new Date(now).toISOString(), bytes };
  writeFileSync(sidecarPath(path), JSON.stringify(fresh, null, 2) + '\n');
  return { ...fresh, path, generated: true };
}

/** Expected share of rows with created_at >= now - windowMs (created_at is uniform over the spread). */
export function withinShare(anchorMs, now, windowMs = 3600_000) {
  const share = (anchorMs - (now - windowMs)) / TIME_SPREAD_MS;
  return Math.min(1, Math.max(0, share));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const rows = Number(process.argv[2] ?? 1_000_000);
  const path = resolve(process.argv[3] ?? fileURLToPath(new URL(`./data/sensors-${rows}.csv`, import.meta.url)));
  const started = Date.now();
  const info = ensureDataset({ path, rows });
  const what = info.generated ? `generated in ${((Date.now() - started) / 1000).toFixed(1)}s` : 'reused';
  console.log(`${path}: ${info.rows} rows, ${(info.bytes / 1e6).toFixed(1)} MB, ${what}`);
}
