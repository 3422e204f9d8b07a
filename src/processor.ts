import { readFileSync } from 'node:fs';
import { parseCli, USAGE, UsageError, type CliOptions } from './cli/args.js';
import { ConfigError, formatIssue } from './config/issues.js';
import { loadConfig } from './config/load-config.js';
import { describeError } from './errors.js';
import { catchHangupsAtStart } from './cli/early-hangup.js';
import type { LoadedConfig } from './config/types.js';

// What runs a config (logging, the pipeline) is imported only once the config is valid, so
// --validate, --help and config errors stay fast.

// A service may get SIGHUP (systemctl reload) while it loads its config: caught from here on.
if (process.argv.includes('--continuous')) catchHangupsAtStart();

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_INVALID = 2;

/** The version in our package.json, found from wherever this file runs (the bundle or the compiled tree). */
function version(): string {
  for (let dir = new URL('.', import.meta.url); dir.pathname !== '/'; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'threshold-processor') return pkg.version;
    } catch {
      // no package.json at this level: go up
    }
  }
  return 'unknown';
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'test') {
    const { runRuleTestsCli } = await import('./rule-tests/cli.js');
    return runRuleTestsCli(argv.slice(1));
  }
  let options: CliOptions;
  try {
    options = parseCli(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${err.message}\nRun with --help for the options.\n`);
    return EXIT_INVALID;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return EXIT_OK;
  }
  if (options.version) {
    process.stdout.write(`${version()}\n`);
    return EXIT_OK;
  }

  let config: LoadedConfig;
  try {
    config = await loadConfig(options.config);
  } catch (err) {
    // Whatever stops a config from loading is exit 2: under systemd, exit 1 means "restart", and
    // a restart cannot fix a config. A failure that is not a ConfigError is still reported as one.
    const issues = err instanceof ConfigError ? err.issues : [{ file: options.config, line: 1, col: 1, path: '', message: `cannot load config: ${describeError(err)}` }];
    for (const issue of issues) process.stderr.write(formatIssue(issue) + '\n');
    process.stderr.write(`${options.config}: ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing was run\n`);
    // A bug in the loader keeps its stack, so it can be found.
    if (err instanceof TypeError || err instanceof ReferenceError) process.stderr.write(`${err.stack}\n`);
    return EXIT_INVALID;
  }
  if (options.validate) {
    process.stdout.write(describeValid(config));
    return EXIT_OK;
  }
  if (options.check) {
    const { runCheck } = await import('./cli/check.js');
    return runCheck(config, options);
  }
  const { run } = await import('./cli/run.js');
  return run(config, options);
}

function describeValid(config: LoadedConfig): string {
  const fromFiles = config.ruleFiles.length ? ` (rule files: ${config.ruleFiles.join(', ')})` : '';
  return (
    `${config.file}: valid: ${Object.keys(config.datasources).length} datasources, ` +
    `${config.rules.length} rules${fromFiles}, ${Object.keys(config.targets).length} export targets\n`
  );
}

// `... | head` closes our stdout early: that is the reader's choice, not a failure to report.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT_OK);
  throw err;
});

// Once the terminal is gone (SIGHUP), writing to it fails: there is no one left to tell, and the
// run must still end as the signal asks rather than crash.
process.stderr.on('error', () => {});

// If the event loop empties while main() still waits, something awaited an event that will never
// come: say so and fail, rather than let Node exit 0 as if the run had succeeded.
let settled = false;
process.on('beforeExit', () => {
  if (settled) return;
  process.stderr.write('internal error: the run stopped while waiting for a read or a write that will never finish\n');
  process.exit(EXIT_FAILED);
});

main(process.argv.slice(2)).then(
  (code) => {
    settled = true;
    process.exitCode = code;
    // An idle keep-alive socket must not hold the process open once the work is done.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (err: Error) => {
    process.stderr.write(`internal error: ${err.stack ?? err.message}\n`);
    process.exit(EXIT_FAILED);
  },
);
