import { parseArgs } from 'node:util';
import { ConfigCache } from './configs.js';
import { findTestFiles } from './discover.js';
import { processOutput, type Output } from './output.js';
import { summaryLine, type Tally } from './report.js';
import { runTestFile } from './run-file.js';

export const TEST_USAGE = `Usage: threshold-processor test [FILE | FOLDER ...] [--config FILE]

Runs rule tests: feeds the records written in each test file to the rules of the config it
tests, and checks which records each rule matches. No datasource or export target is touched.

Arguments:
  FILE | FOLDER   test files, folders searched for *.test.yaml / *.test.yml, or globs
                  (quoted, e.g. 'teams/**/*.test.yaml')
                  (default: rules/**/*.test.yaml and rules/**/*.test.yml)

Options:
  --config FILE   config for test files that do not name one with config: (default: ./config.yaml)
  --help          show this help

Exit codes: 0 every case passed; 1 a case failed; 2 a test file or the config it tests has
problems, or no test file was found. The format is described in docs/rule-tests.md.
`;

const EXIT_PASSED = 0;
const EXIT_FAILED = 1;
const EXIT_BROKEN = 2;

interface TestArgs {
  readonly files: readonly string[];
  readonly config: string;
  readonly help: boolean;
}

/** `threshold-processor test ...`: returns the exit code. */
export async function runRuleTestsCli(argv: readonly string[], io: Output = processOutput): Promise<number> {
  let args: TestArgs;
  try {
    args = parseTestArgs(argv);
  } catch (err) {
    io.err(`error: ${(err as Error).message}\nRun "threshold-processor test --help" for the options.\n`);
    return EXIT_BROKEN;
  }
  if (args.help) {
    io.out(TEST_USAGE);
    return EXIT_PASSED;
  }
  const { files, problems } = await findTestFiles(args.files);
  for (const problem of problems) io.err(`${problem}\n`);
  if (problems.length > 0) return EXIT_BROKEN;
  if (files.length === 0) {
    io.err('no rule tests found in rules/ (rules/**/*.test.yaml); write one next to the rules it tests, see docs/rule-tests.md\n');
    return EXIT_BROKEN;
  }
  const tally = await runAll(files, new ConfigCache(args.config, io), io);
  io.out(`\n${summaryLine(tally)}`);
  if (tally.broken > 0) return EXIT_BROKEN;
  return tally.failed > 0 ? EXIT_FAILED : EXIT_PASSED;
}

/** Files run one after another: their output stays in order, and cases share the config's clock. */
async function runAll(files: readonly string[], configs: ConfigCache, io: Output): Promise<Tally> {
  const tally: Tally = { passed: 0, failed: 0, broken: 0 };
  for (const file of files) {
    const result = await runTestFile(file, configs, io);
    tally.passed += result.passed;
    tally.failed += result.failed;
    tally.broken += result.broken;
  }
  return tally;
}

function parseTestArgs(argv: readonly string[]): TestArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c', default: 'config.yaml' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new Error((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  return { files: parsed.positionals, config: parsed.values.config!, help: parsed.values.help! };
}
