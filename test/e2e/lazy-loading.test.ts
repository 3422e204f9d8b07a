import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, runCli, writeFiles } from '../helpers.js';

/**
 * A resolve hook that appends every package the CLI loads from node_modules to a file, so the
 * test sees what a real run imported.
 */
function loadRecorder(logFile: string): string {
  const hook = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+\\/.*)$/.exec(result.url);
  if (m) appendFileSync(${JSON.stringify(logFile)}, m[1] + '\\n');
  return result;
}`;
  // require() from CommonJS files bypasses ESM hooks: record those through Module._resolveFilename.
  const cjs = `import Module from 'node:module'; import { appendFileSync } from 'node:fs';
const resolve = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const file = resolve.apply(this, args);
  const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+\\/.*)$/.exec(file);
  if (m) appendFileSync(${JSON.stringify(logFile)}, m[1] + '\\n');
  return file;
};`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(hook))});`;
  return [register, cjs].map((code) => `--import=data:text/javascript,${encodeURIComponent(code)}`).join(' ');
}

describe('connector libraries load only when a connector needs them', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  async function packagesLoaded(config: string, args: string[] = []): Promise<string[]> {
    writeFiles(dir, { 'c.yaml': config, 'd.csv': 'v\n5\n', 'loaded.txt': '' });
    const log = path.join(dir, 'loaded.txt');
    const result = await runCli(['--config', 'c.yaml', ...args], { cwd: dir, env: { NODE_OPTIONS: loadRecorder(log) } });
    expect(result.code, result.stderr).to.equal(0);
    return [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))].sort();
  }

  /** Package names among the loaded files (`pino/lib/tools.js` -> `pino`). */
  const packagesOf = (files: string[]) => [...new Set(files.map((f) => (f.startsWith('@') ? f.split('/').slice(0, 2).join('/') : f.split('/')[0]!)))];

  const CSV_TO_FILE = `datasources:\n  s: {type: csv, path: d.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`;

  it('--validate loads no logger, no client and no schema compiler (only the validator\'s small runtime helper)', async () => {
    const files = await packagesLoaded(CSV_TO_FILE, ['--validate']);
    expect(files).to.include('ajv/dist/runtime/ucs2length.js'); // the recorder sees require() too
    expect(files.filter((f) => f.startsWith('ajv/')).every((f) => f.startsWith('ajv/dist/runtime/'))).to.equal(true);
    for (const heavy of ['pino', 'undici', 'tinyglobby', 'csv-parse']) expect(packagesOf(files), heavy).not.to.include(heavy);
  });

  it('a local CSV to a file loads neither the HTTP client nor the glob library', async () => {
    const loaded = packagesOf(await packagesLoaded(CSV_TO_FILE));
    expect(loaded).to.include('pino');
    for (const unused of ['undici', 'tinyglobby', 'csv-parse']) expect(loaded, unused).not.to.include(unused);
  });

  it('a glob path loads the glob library, and only then', async () => {
    const loaded = packagesOf(await packagesLoaded(CSV_TO_FILE.replace('path: d.csv', 'path: "*.csv"')));
    expect(loaded).to.include('tinyglobby');
    expect(loaded).not.to.include('undici');
  });
});
