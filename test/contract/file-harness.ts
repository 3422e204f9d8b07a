import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileSink } from '../../connectors/file/file-sink.js';
import { makeTempDir, parseNdjson } from '../helpers.js';
import type { HarnessSinkOptions, PlainRecord, TargetHarness } from './harness.js';

/** Every file under `dir`, hidden ones (temp files) included, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

/** The file target, NDJSON, one file per rule under a fresh temp folder; the peer is the folder. */
export function fileHarness(): TargetHarness {
  let dir = '';
  let removeDir = () => {};
  const create = (options: HarnessSinkOptions, targetPath: string) =>
    fileSink.create(
      { type: 'file', path: targetPath, include_metadata: options.includeMetadata },
      { name: 'contract-file', configDir: dir, log: options.log, signal: new AbortController().signal },
    );
  const visible = async (): Promise<PlainRecord[]> =>
    filesUnder(dir)
      .filter((file) => file.startsWith('out' + path.sep) && !path.basename(file).startsWith('.'))
      .flatMap((file) => parseNdjson(readFileSync(path.join(dir, file), 'utf8')));
  return {
    name: 'file',
    delivery: 'atomic',
    async setup() {
      ({ dir, cleanup: removeDir } = makeTempDir('tp-contract-file-'));
    },
    create: (options) => create(options, 'out/{rule}.ndjson'),
    async createFailing(options) {
      // A folder cannot be created under a regular file: no permission trick, works as root too.
      writeFileSync(path.join(dir, 'blocker'), 'not a folder\n');
      return { sink: await create(options, 'blocker/out/{rule}.ndjson'), names: path.join(dir, 'blocker') };
    },
    received: visible,
    visibleBeforeFlush: visible,
    async traces() {
      return filesUnder(dir);
    },
    async cleanup() {
      removeDir();
    },
  };
}
