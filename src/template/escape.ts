/**
 * How a placeholder's value is made safe for the place it lands in. Each function takes the
 * value as text (records' numbers and objects are turned into text before) and returns what is
 * inserted. Literal text of the template is never escaped: the config's author wrote it.
 */

/** A name fit for one path segment: anything but letters, digits, dot, dash and underscore becomes "_". */
export function safeSegment(value: string): string {
  const safe = value.replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '.' || safe === '..' ? safe.replace(/\./g, '_') : safe;
}

/**
 * An S3 object key or Redis key part: kept as it is (Unicode, spaces, `:` and the like are fine
 * in both), except that control characters become "_" (they break logs, redis-cli output and
 * S3's XML listings), `/` becomes "_" so a value stays inside its one "folder" level of an S3
 * key, and a value that is exactly `.` or `..` is neutralised, since tools that copy S3 keys to
 * disk (aws s3 sync, rclone) read them as path segments. A lone surrogate becomes U+FFFD, as
 * UTF-8 would write it anyway: the S3 SDK percent-encodes keys, and encodeURIComponent throws
 * "URI malformed" on one, which would fail the object only when it is published.
 */
export function safeKeyPart(value: string): string {
  // eslint-disable-next-line no-control-regex
  const safe = toWellFormed(value).replace(/[\u0000-\u001f\u007f-\u009f/]/g, '_');
  return safe === '.' || safe === '..' ? safe.replace(/\./g, '_') : safe;
}

/**
 * A Hive partition value (the `{rule}` of `rule={rule}/`), escaped as Hive and Spark write one:
 * `%XX` for control characters, the slash, and the characters " # % ' * : = ? \ { [ ] ^, so a
 * rule named `latency>=500` or `a/b` stays one partition that Athena, Spark, Trino and DuckDB
 * read back as the name itself (they decode `%XX`); unescaped, an `=` breaks
 * `hive_partitioning` for the whole lake. A lone surrogate becomes U+FFFD, as in any key.
 */
export function hivePartitionValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  return toWellFormed(value).replace(/[\u0000-\u001f\u007f-\u009f"#%'*/:=?\\{[\]^]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/**
 * One URL component: percent-encoded, so a value cannot add a path segment (`/`), a query
 * parameter (`?`, `&`, `=`), a fragment (`#`) or user info (`@`). A lone surrogate, which
 * encodeURIComponent refuses, becomes U+FFFD.
 */
export function safeUrlPart(value: string): string {
  return encodeURIComponent(toWellFormed(value));
}

/**
 * A URL component in the path: as safeUrlPart, and a value that is exactly `.` or `..` becomes
 * `_` or `__`. Percent-encoding cannot help there: URL parsers (WHATWG, undici) read `%2e%2e` as
 * `..` too, and a record's `..` would move the request up a level (`/hosts/../alerts` is
 * `/alerts`).
 */
export function safeUrlPathPart(value: string): string {
  return value === '.' || value === '..' ? value.replace(/\./g, '_') : safeUrlPart(value);
}

/** The inside of a JSON string literal (no quotes): quotes, backslashes and control characters escaped. */
export function jsonStringContent(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}

/** The text with each lone surrogate (which UTF-8 cannot hold, and encodeURIComponent refuses) replaced by U+FFFD. */
export function toWellFormed(value: string): string {
  const native = (value as { toWellFormed?: () => string }).toWellFormed;
  if (native) return native.call(value);
  return value.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
