import { createHash } from 'node:crypto';

/** What a config or rule file held when read: --watch compares it with the file now to tell a real change from a touch. */
export function contentDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
