import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { contentDigest } from '../config/content-digest.js';
import { findRuleFiles } from '../config/load-config.js';
import type { LoadedConfig } from '../config/types.js';
import type { Logger } from '../log.js';

/** Editors save in bursts (write, rename, chmod): one reload per burst. */
const SETTLE_MS = 300;

/** Per file (the config, then each rule file found, absolute): the digest of what it holds. */
type Contents = ReadonlyMap<string, string>;

/**
 * Calls `onChange` (with what changed) when the config file, a rule file, or the set of rule
 * files on disk differs from what `config` loaded.
 *
 * Events only say that something happened in a folder, not what: editors rename a new file over
 * the old one, and a Kubernetes ConfigMap update swaps a `..data` symlink, so the events name
 * neither the config nor a rule file. So folders are watched, any event starts a burst, and once
 * it settles the files are read and compared with what was loaded: a real change reloads, an
 * unrelated file does not. The watched folders are chosen again after each burst, because a
 * folder removed and created again (`rm -rf rules; cp -r ...`) is a new folder the old watch
 * never hears from; the rules folder's parent is watched so that its return is noticed.
 */
export function watchConfigFiles(config: LoadedConfig, log: Logger, onChange: (change: string) => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const startBurst = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void settle(), SETTLE_MS);
  };
  const folders = new FolderWatchers(log, startBurst);

  // The files as last reported: a reload they failed (a broken file) is not asked for again at
  // every unrelated event, only when they change once more. SIGHUP retries at will.
  let reported: Contents | undefined;
  const check = async () => {
    folders.watchOnly(foldersToWatch(config));
    const now = await contentsNow(config);
    // Unlisted: a folder went away mid-listing, after it was watched, so its removal starts another burst.
    if (now === undefined || closed) return;
    const change = firstDifference(config.contentDigests, now);
    if (change === undefined) reported = undefined;
    else if (!reported || firstDifference(reported, now) !== undefined) {
      reported = now;
      onChange(change);
    }
  };

  let checking = false;
  let checkAgain = false;
  // A burst that settles during a check is checked after it, never alongside it.
  const settle = async () => {
    if (checking) {
      checkAgain = true;
      return;
    }
    checking = true;
    try {
      do {
        checkAgain = false;
        if (!closed) await check();
      } while (checkAgain);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot compare the config files with what was loaded; use SIGHUP to reload');
    } finally {
      checking = false;
    }
  };

  // A change made between the load and this watch would otherwise wait for the next event.
  void settle();
  return () => {
    closed = true;
    clearTimeout(timer);
    folders.close();
  };
}

/**
 * The folders whose events may mean a change: the config's, the rules folder and every folder
 * under it, those of the other rule files, and the rules folder's parent (or nearest existing
 * ancestor), where the rules folder appears again after being removed.
 */
function foldersToWatch(config: LoadedConfig): string[] {
  const folders = new Set([path.dirname(path.resolve(config.file))]);
  for (const file of config.contentDigests.keys()) folders.add(path.dirname(file));
  for (const folder of foldersWithin(config.rulesDir)) folders.add(folder);
  folders.add(nearestExistingFolder(path.dirname(config.rulesDir)));
  return [...folders].filter(isFolder);
}

/** The folder and its subfolders, found the way rule files are (symlinks followed); none when it does not exist. */
function foldersWithin(folder: string): string[] {
  if (!isFolder(folder)) return [];
  try {
    const entries = readdirSync(folder, { recursive: true, encoding: 'utf8' });
    return [folder, ...entries.map((entry) => path.join(folder, entry)).filter(isFolder)];
  } catch {
    // Removed while being listed: the burst that removal starts lists it again.
    return [folder];
  }
}

function nearestExistingFolder(folder: string): string {
  let current = folder;
  while (!isFolder(current) && path.dirname(current) !== current) current = path.dirname(current);
  return current;
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The config file and the rule files on disk now, each with its digest; undefined when a folder went away while being listed. */
async function contentsNow(config: LoadedConfig): Promise<Contents | undefined> {
  const configFile = path.resolve(config.file);
  let ruleFiles: string[];
  try {
    ruleFiles = (await findRuleFiles(config)).files;
  } catch {
    return undefined;
  }
  const contents = new Map([[configFile, await digestOf(configFile)]]);
  for (const file of ruleFiles) contents.set(file, await digestOf(file));
  return contents;
}

/** The first file that differs, as a reload reason (`changed: FILE`), the config first; undefined when none does. */
function firstDifference(before: Contents, now: Contents): string | undefined {
  for (const [file, digest] of now) {
    if (!before.has(file)) return `added: ${file}`;
    if (before.get(file) !== digest) return `changed: ${file}`;
  }
  for (const file of before.keys()) if (!now.has(file)) return `removed: ${file}`;
  return undefined;
}

/** The file's digest, or a text no digest equals when it cannot be read (a load would say why). */
async function digestOf(file: string): Promise<string> {
  try {
    return contentDigest(await readFile(file));
  } catch (err) {
    return `unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
}

/** One fs.watch per folder, each event starting a burst. */
class FolderWatchers {
  readonly #watchers = new Map<string, FSWatcher>();
  /** Folders already reported as unwatchable: said once, not after every burst. */
  readonly #warned = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly onEvent: () => void,
  ) {}

  /** Watches these folders afresh: a watch on a folder since removed, or removed and created again, hears nothing more. */
  watchOnly(folders: readonly string[]): void {
    this.close();
    for (const folder of folders) this.#watch(folder);
  }

  close(): void {
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  #watch(folder: string): void {
    try {
      const watcher = watch(folder, { persistent: false }, () => this.onEvent());
      // Typically the folder went away; the burst this starts watches what is there now.
      watcher.on('error', () => this.onEvent());
      this.#watchers.set(folder, watcher);
    } catch (err) {
      if (this.#warned.has(folder)) return;
      this.#warned.add(folder);
      this.log.warn({ folder, err: (err as Error).message }, 'cannot watch this folder, so changes in it do not reload; use SIGHUP to reload (ENOSPC: raise fs.inotify.max_user_watches)');
    }
  }
}
