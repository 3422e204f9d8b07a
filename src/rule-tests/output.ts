import path from 'node:path';
import { formatIssue, sortIssues, type ConfigIssue } from '../config/issues.js';
import { plural } from './report.js';

/** Where the runner writes: results on stdout, problems with test files and configs on stderr. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: Output = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** A path as the user would type it from the working directory, for messages. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), path.resolve(file));
  return relative.startsWith('..') || path.isAbsolute(relative) ? path.resolve(file) : relative;
}

export function printIssues(io: Output, issues: readonly ConfigIssue[], closing: string): void {
  for (const issue of sortIssues(issues)) io.err(formatIssue(issue) + '\n');
  io.err(`${closing.replace('{problems}', plural(issues.length, 'problem', 'problems'))}\n`);
}
