// Runs one measured child process and returns its exit status, wall time and peak RSS.
//
// RSS figures are MiB (2^20 bytes): maxRSS and GNU time's %M are KiB. Peak RSS is taken two ways: the child's own process.resourceUsage().maxRSS (written at exit by
// the report-rss.mjs preload) and GNU time's %M when /usr/bin/time exists. The child's own figure
// is preferred; GNU time's is the fallback and a cross-check.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GNU_TIME = '/usr/bin/time';
const PRELOAD = new URL('./report-rss.mjs', import.meta.url).href;
const hasGnuTime = existsSync(GNU_TIME);
/** util-linux `script` (Debian: bsdutils), for running a child on a pseudo-terminal. */
export const SCRIPT = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
// The terminal size the child sees under `script`: without one a pty reports 0 columns.
const TTY_COLUMNS = 120;
const TTY_ROWS = 40;
let sequence = 0;

function readKiB(path) {
  try {
    const kib = Number(readFileSync(path, 'utf8').trim().split('\n').pop());
    return Number.isFinite(kib) && kib > 0 ? kib : undefined;
  } finally {
    rmSync(path, { force: true });
  }
}

function collect(stream) {
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('utf8');
}

const shellQuote = (arg) => `'${String(arg).replaceAll("'", `'\\''`)}'`;

/**
 * The command line that runs `argv` with a pseudo-terminal as its stdin, stdout and stderr:
 * `script -qefc "stty cols C rows R; exec <argv>" /dev/null`. What the child writes reaches this
 * process through script's stdout (stderr included); -e passes on the child's exit code.
 * With `redirect`, the child's stdout and stderr go to `<redirect>.out` and `.err` instead: the
 * same wrapper (script, a shell, stty), without a terminal to write to.
 */
function onPseudoTerminal(argv, redirect) {
  if (!SCRIPT) throw new Error('`script` (util-linux, Debian package bsdutils) is not installed; the TTY case needs it');
  const output = redirect ? ` >${shellQuote(`${redirect}.out`)} 2>${shellQuote(`${redirect}.err`)}` : '';
  const command = `stty cols ${TTY_COLUMNS} rows ${TTY_ROWS}; exec ${argv.map(shellQuote).join(' ')}${output}`;
  return [SCRIPT, '-qefc', command, '/dev/null'];
}

function readAndRemove(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  } finally {
    rmSync(path, { force: true });
  }
}

/**
 * Runs `node <nodeArgs...>` (the current node binary). `selfReport: false` skips the RSS preload,
 * for start-up timings where even loading one small module would show. `tty: true` runs it on a
 * pseudo-terminal (see onPseudoTerminal); its output then arrives as `stdout`, `stderr` is empty.
 * `tty: 'redirect'` runs it under the same wrapper with stdout and stderr to files, which are
 * returned as `stdout` and `stderr`: the comparison for `tty: true` that differs only in the terminal.
 */
export async function measureNode(nodeArgs, { tmpDir, selfReport = true, cwd, env = {}, tty = false } = {}) {
  mkdirSync(tmpDir, { recursive: true });
  const id = `${process.pid}-${++sequence}`;
  const rssFile = join(tmpDir, `rss-${id}`);
  const timeFile = join(tmpDir, `time-${id}`);
  const node = [process.execPath, ...(selfReport ? ['--import', PRELOAD] : []), ...nodeArgs];
  const redirect = tty === 'redirect' ? join(tmpDir, `output-${id}`) : undefined;
  const command = tty ? onPseudoTerminal(node, redirect) : node;
  // Under script, GNU time's %M is the largest of script, the shell and node: node's, in practice.
  const argv = hasGnuTime ? [GNU_TIME, '-f', '%M', '-o', timeFile, ...command] : command;
  const started = process.hrtime.bigint();
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env: { ...process.env, ...env, ...(selfReport ? { BENCH_RSS_FILE: rssFile } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  const { code, signal } = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rssSelfKiB = selfReport && existsSync(rssFile) ? readKiB(rssFile) : undefined;
  const rssTimeKiB = hasGnuTime && existsSync(timeFile) ? readKiB(timeFile) : undefined;
  const rssKiB = rssSelfKiB ?? rssTimeKiB;
  return {
    code,
    signal,
    wallSeconds,
    stdout: redirect ? readAndRemove(`${redirect}.out`) : stdout(),
    stderr: redirect ? readAndRemove(`${redirect}.err`) : stderr(),
    rssMiB: rssKiB === undefined ? undefined : rssKiB / 1024,
    rssSelfMiB: rssSelfKiB === undefined ? undefined : rssSelfKiB / 1024,
    rssTimeMiB: rssTimeKiB === undefined ? undefined : rssTimeKiB / 1024,
  };
}

/** The last JSON line a case script printed on stdout. */
export function caseOutput(run) {
  const line = run.stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`no result line on stdout (exit ${run.code ?? run.signal}); stderr: ${tail(run.stderr)}`);
  }
}

export function tail(text, lines = 8) {
  return text.trim().split('\n').slice(-lines).join('\n');
}

export const benchDir = fileURLToPath(new URL('..', import.meta.url));
