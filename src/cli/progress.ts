import type { CycleReport } from '../pipeline/stats.js';

/** Where the line is drawn: stderr on a terminal; a test hands in a fake with a width. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly columns?: number;
}

const CLEAR_LINE = '\r\x1b[K';

/**
 * One line on a terminal, redrawn in place every `intervalMs` while a cycle runs: rows read, rows
 * per second, matches per rule. A timer reads the cycle's counters; nothing is done per row, so
 * the reading goes exactly as fast with the line as without it.
 */
export class ProgressLine {
  #report: CycleReport | undefined;
  #timer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #shown = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly intervalMs = 250,
    private readonly now: () => number = Date.now,
  ) {}

  start(report: CycleReport): void {
    this.stop();
    this.#report = report;
    this.#startedAt = this.now();
    // Runs shorter than one interval never show a line. unref: the line never keeps the process alive.
    this.#timer = setInterval(() => this.draw(), this.intervalMs).unref();
  }

  /** Stops redrawing and erases the line, so the summary prints on a clean line. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#report = undefined;
    this.clear();
  }

  /** Erases the line (before a log line is written); the next tick draws it again. */
  clear(): void {
    if (!this.#shown) return;
    this.#shown = false;
    this.stream.write(CLEAR_LINE);
  }

  draw(): void {
    if (!this.#report) return;
    this.stream.write(CLEAR_LINE + this.render(this.#report));
    this.#shown = true;
  }

  /** `1,234,567 rows read, 512,345 rows/s · matches: high_value 1,234, low_battery 56`, cut to the terminal's width. */
  render(report: CycleReport): string {
    let rows = 0;
    for (const status of report.datasources.values()) rows += status.records;
    const seconds = Math.max(0.001, (this.now() - this.#startedAt) / 1000);
    const matches = [...report.rules].map(([name, stats]) => `${name} ${count(stats.matched)}`).join(', ');
    const line = `${count(rows)} rows read, ${count(Math.round(rows / seconds))} rows/s${matches ? ` · matches: ${matches}` : ''}`;
    const width = (this.stream.columns || 80) - 1;
    return line.length > width ? line.slice(0, Math.max(0, width - 1)) + '…' : line;
  }
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}
