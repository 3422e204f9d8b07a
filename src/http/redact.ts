import { redactSecrets, redactUrl } from '../util/redact.js';

/** Configured header values shorter than this are too common ("gzip", "en") to hide without hiding everything. */
const MIN_SECRET_LENGTH = 8;

/**
 * A function that makes text from an HTTP exchange fit for a message or a log: every configured
 * header value of 8 characters or more (and each such word of it, so `Bearer abc...` hides the
 * token alone too) becomes `***`, then URLs' credentials and credential-looking assignments are
 * hidden as everywhere else. `extra` values (a token in a webhook URL's path) are hidden whole.
 */
export function headerRedactor(headers: Readonly<Record<string, string>>, extra: readonly string[] = []): (text: string) => string {
  const secrets = new Set<string>();
  for (const value of extra) if (value.length >= MIN_SECRET_LENGTH) secrets.add(value);
  for (const value of Object.values(headers)) {
    if (value.length >= MIN_SECRET_LENGTH) secrets.add(value);
    for (const word of value.split(/\s+/)) if (word.length >= MIN_SECRET_LENGTH) secrets.add(word);
  }
  // Longest first, so a whole value is replaced before a word inside it.
  const ordered = [...secrets].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const secret of ordered) if (out.includes(secret)) out = out.split(secret).join('***');
    return redactSecrets(out);
  };
}

/** A URL for a message: its credentials hidden, then any header value it happens to carry. */
export function redactRequestUrl(url: string, redact: (text: string) => string): string {
  return redact(redactUrl(url));
}
