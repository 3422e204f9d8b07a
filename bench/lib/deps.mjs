// The bench's own dependencies (bench/package.json: DuckDB and json-rules-engine) live in
// bench/node_modules, outside the project's devDependencies, so the project's `npm ci` (what CI
// runs) does not download DuckDB's ~70 MB for a bench it never runs. They are installed here,
// from bench/package-lock.json, the first time a case needs them and again when the lock changes.
//
// Also a command: `node bench/lib/deps.mjs` installs them without running anything.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
const LOCK = join(BENCH_DIR, 'package-lock.json');
const MODULES = join(BENCH_DIR, 'node_modules');
// Written after a successful install: the lock file it was installed from.
const STAMP = join(MODULES, '.installed-from-lock');

const lockHash = () => createHash('sha256').update(readFileSync(LOCK)).digest('hex');

/** True when bench/node_modules holds exactly what bench/package-lock.json pins. */
export function benchDepsInstalled() {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === lockHash();
}

/** Installs the bench's dependencies with `npm ci --prefix bench` unless they are already in place. */
export function ensureBenchDeps(log = (message) => process.stderr.write(`${message}\n`)) {
  if (benchDepsInstalled()) return false;
  log('[bench] installing the bench dependencies (bench/package-lock.json): npm ci --prefix bench');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) throw new Error(`could not run npm to install the bench dependencies: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`npm ci --prefix bench failed (exit ${result.status}); the duckdb and json-rules-engine cases need it`);
  writeFileSync(STAMP, `${lockHash()}\n`);
  return true;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!ensureBenchDeps()) console.log('bench dependencies already installed');
}
