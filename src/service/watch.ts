import { existsSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { LoadedConfig } from '../config/types.js';
import type { Logger } from '../log.js';

/** Editors save in bursts (write, rename, chmod): one reload per burst. */
const SETTLE_MS = 300;

/**
 * Calls `onChange` when the config file or a YAML file in a folder that holds rule files
 * changes. Folders are watched rather than files, because editors replace a file by renaming a
 * new one over it, which ends a watch on the file itself. Rule test files are ignored.
 */
export function watchConfigFiles(config: LoadedConfig, log: Logger, onChange: (file: string) => void): () => void {
  const configFile = path.resolve(config.file);
  const folders = new Set([path.dirname(configFile), ...config.ruleFiles.map((f) => path.dirname(path.resolve(f)))]);
  const rulesDir = path.join(config.dir, 'rules');
  if (existsSync(rulesDir)) folders.add(rulesDir);
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];
  for (const folder of folders) {
    try {
      const watcher = watch(folder, { persistent: false }, (_event, name) => {
        if (name === null) return;
        const file = path.join(folder, name.toString());
        const relevant = file === configFile || (/\.ya?ml$/i.test(file) && !/\.test\.ya?ml$/i.test(file));
        if (!relevant) return;
        clearTimeout(timer);
        timer = setTimeout(() => onChange(file), SETTLE_MS);
      });
      watcher.on('error', (err) => log.warn({ folder, err: err.message }, 'cannot watch this folder any more; use SIGHUP to reload'));
      watchers.push(watcher);
    } catch (err) {
      log.warn({ folder, err: (err as Error).message }, 'cannot watch this folder; use SIGHUP to reload');
    }
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
