import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** Our package.json version, found from wherever this code runs (the bundle, its chunks, or the compiled tree). */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  for (let dir = new URL('.', import.meta.url); dir.pathname !== '/'; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'threshold-processor') return (cached = pkg.version);
    } catch {
      // no package.json at this level: go up
    }
  }
  return cached;
}

export function userAgent(): string {
  return `threshold-processor/${packageVersion()}`;
}
