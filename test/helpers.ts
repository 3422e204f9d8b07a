import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { MatchBatch, OperationContext, Sink } from '../connectors/types.js';
import { deliveryBatch } from '../src/delivery/target-queue.js';

/** The repository root: tests run compiled from dist/test/<kind>/. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = path.join(repoRoot, "dist", "processor.js");

/** A fresh folder per test, removed by the returned cleanup. */
export function makeTempDir(prefix = 'tp-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A fresh temp folder for each test of the enclosing describe, handed to `use` and removed after the test. */
export function freshDirPerTest(use: (dir: string) => void): void {
  let cleanup = () => {};
  beforeEach(() => {
    const temp = makeTempDir();
    cleanup = temp.cleanup;
    use(temp.dir);
  });
  afterEach(() => cleanup());
}

/** Writes files (relative path -> content) under dir, creating folders. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    const full = path.join(dir, name);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  readonly child: ReturnType<typeof spawn>;
  readonly done: Promise<CliResult>;
  /** Resolves once stderr has printed text matching the pattern. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts the built CLI as a user would, with its own environment. */
export function startCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): RunningCli {
  const child = spawn(process.execPath, [cliPath, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    for (const w of [...waiters]) if (w.pattern.test(stderr)) w.resolve();
  });
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return {
    child,
    done,
    waitForStderr(pattern, timeoutMs = 10_000) {
      if (pattern.test(stderr)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`stderr never matched ${pattern}; got:\n${stderr}`)), timeoutMs);
        waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
  };
}

export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** A logger that keeps its lines in memory, for tests that assert on what was logged. */
export function memoryLogger(level = 'debug'): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const log = pino({ level, base: undefined }, { write: (s: string) => chunks.push(s) });
  return { log, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

/** Parses NDJSON text into records. */
export function parseNdjson(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** An operation context for calling a connector directly, as the cycle would. */
export function operationContext(signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, log: memoryLogger().log };
}

/** A sink driven as the cycle drives it (each batch with its delivery identity, every call with a context), for tests that call it directly. */
export function drive(sink: Sink, signal?: AbortSignal) {
  const ctx = operationContext(signal);
  return {
    sink,
    write: (batch: MatchBatch) => sink.write(deliveryBatch('test', [batch]), ctx),
    flush: () => sink.flush(ctx),
    abort: () => sink.abort?.(ctx) ?? Promise.resolve(),
    check: () => sink.check?.(ctx),
  };
}

/** The JSON log lines a run wrote on stderr (JSON, since stderr is not a terminal in tests). */
export function logLines(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** The `run summary` log line a run wrote on stderr; fails the test, showing stderr, when there is none. */
export function runSummary(stderr: string): Record<string, any> {
  const line = logLines(stderr).find((l) => l.msg === 'run summary');
  if (!line) throw new Error(`no run summary in:\n${stderr.slice(-4000)}`);
  return line;
}
