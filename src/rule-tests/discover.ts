import { stat } from 'node:fs/promises';
import path from 'node:path';

/** Where rule tests live unless the command line says otherwise: next to the rules they test. */
export const DEFAULT_TEST_GLOBS = ['rules/**/*.test.yaml', 'rules/**/*.test.yml'];
const TESTS_IN_FOLDER = ['**/*.test.yaml', '**/*.test.yml'];

/**
 * The test files to run, in name order: each argument is a file, a folder (searched for
 * *.test.yaml / *.test.yml at any depth) or a quoted glob; no argument means DEFAULT_TEST_GLOBS.
 */
export async function findTestFiles(args: readonly string[]): Promise<{ files: string[]; problems: string[] }> {
  if (args.length === 0) return { files: await globFiles(DEFAULT_TEST_GLOBS, process.cwd()), problems: [] };
  const files = new Set<string>();
  const problems: string[] = [];
  for (const arg of args) {
    const found = await filesOf(arg);
    if (typeof found === 'string') problems.push(`${arg}: ${found}`);
    else found.forEach((f) => files.add(f));
  }
  return { files: [...files].sort(), problems };
}

async function filesOf(arg: string): Promise<string[] | string> {
  const kind = await kindOf(arg);
  if (kind === 'file') return [path.resolve(arg)];
  if (kind === 'folder') {
    const found = await globFiles(TESTS_IN_FOLDER, path.resolve(arg));
    return found.length > 0 ? found : 'no *.test.yaml or *.test.yml file in this folder';
  }
  if (/[*?[\]{}]/.test(arg)) {
    const found = await globFiles([arg], process.cwd());
    return found.length > 0 ? found : 'no file matches this pattern';
  }
  return 'no such file or folder';
}

async function kindOf(p: string): Promise<'file' | 'folder' | undefined> {
  try {
    return (await stat(p)).isDirectory() ? 'folder' : 'file';
  } catch {
    return undefined;
  }
}

async function globFiles(patterns: string[], cwd: string): Promise<string[]> {
  const { glob } = await import('tinyglobby');
  return (await glob(patterns, { cwd, absolute: true, onlyFiles: true })).map((f) => path.normalize(f)).sort();
}
