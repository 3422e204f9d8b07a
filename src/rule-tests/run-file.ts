import type { LoadedConfig } from '../config/types.js';
import { issueAt } from '../config/yaml-file.js';
import { compareMatches } from './compare.js';
import type { ConfigCache } from './configs.js';
import { runCase, type CaseRun } from './harness.js';
import { displayPath, printIssues, type Output } from './output.js';
import { casePassed, formatCase, type CaseOutcome, type RuleOutcome, type Tally } from './report.js';
import { resolveAgainstConfig } from './resolve.js';
import { readRuleTestFile, type Expectation, type RuleTestCase, type RuleTestFile } from './test-file.js';

const NOT_RUN = `{problems}; its tests were not run`;

/** Checks one test file, runs its cases against its config and prints each case's result. */
export async function runTestFile(file: string, configs: ConfigCache, io: Output): Promise<Tally> {
  const tally: Tally = { passed: 0, failed: 0, broken: 0 };
  const shown = displayPath(file);
  const { testFile, issues } = await readRuleTestFile(file, shown);
  if (testFile === undefined) return brokenFile(io, issues, shown);

  const configFile = testFile.config ?? configs.defaultFile;
  const config = await configs.load(configFile);
  if (config === undefined) {
    io.err(`${shown}: the config it tests, ${displayPath(configFile)}, does not load (problems listed above); its tests were not run\n`);
    return { ...tally, broken: 1 };
  }
  const resolved = await resolveAgainstConfig(testFile, config);
  if (resolved.issues.length > 0) return brokenFile(io, resolved.issues, shown);

  io.out(`${shown} (config: ${config.file})\n`);
  for (const testCase of resolved.cases) {
    const run = await runCase(config, testCase);
    if (run.unreadable.length > 0) {
      const problems = run.unreadable.map(({ input, message }) => issueAt(testFile.yaml, input.path, `input could not be read: ${message}`));
      printIssues(io, problems, `${shown}: {problems}; case "${testCase.name}" was not run`);
      io.out(`  ✘ ${testCase.name} (not run: an input could not be read)\n`);
      tally.broken = 1;
      continue;
    }
    const outcome = judgeCase(testFile, config, testCase, run);
    io.out(formatCase(outcome));
    if (casePassed(outcome)) tally.passed++;
    else tally.failed++;
  }
  return tally;
}

function brokenFile(io: Output, issues: Parameters<typeof printIssues>[1], shown: string): Tally {
  printIssues(io, issues, `${shown}: ${NOT_RUN}`);
  return { passed: 0, failed: 0, broken: 1 };
}

function judgeCase(testFile: RuleTestFile, config: LoadedConfig, testCase: RuleTestCase, run: CaseRun): CaseOutcome {
  return { name: testCase.name, rules: testCase.expectations.map((e) => judgeRule(testFile, config, testCase, e, run)) };
}

function judgeRule(testFile: RuleTestFile, config: LoadedConfig, testCase: RuleTestCase, expectation: Expectation, run: CaseRun): RuleOutcome {
  const actual = run.matches.get(expectation.rule) ?? [];
  const { file, line, col } = issueAt(testFile.yaml, expectation.path, '', true);
  return {
    rule: expectation.rule,
    location: `${file}:${line}:${col}`,
    expectedCount: expectation.records.length,
    actualCount: actual.length,
    differences: compareMatches(expectation.records, actual),
    stats: run.stats.get(expectation.rule),
    notes: whyNothingMatched(config, testCase, expectation.rule),
  };
}

/** The two ways a rule cannot match anything in a case, which otherwise look like a wrong rule. */
function whyNothingMatched(config: LoadedConfig, testCase: RuleTestCase, ruleName: string): string[] {
  const rule = config.rules.find((r) => r.name === ruleName);
  if (rule === undefined) return [];
  if (!rule.enabled) return [`rule "${ruleName}" is disabled (enabled: false), so it matches nothing`];
  const given = testCase.inputs.map((i) => i.datasource);
  if (rule.datasources.some((d) => given.includes(d))) return [];
  const reads = rule.datasources.join(', ');
  return [`rule "${ruleName}" reads ${reads}, and this case gives no input for ${rule.datasources.length === 1 ? 'it' : 'them'}`];
}
