const PARAMETER = /\$(\d+)/y;
/** `$$` or `$tag$`: a tag is a name without `$`, and cannot start with a digit (`$1$` is a parameter, then a `$`). */
const DOLLAR_QUOTE = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$/y;

/**
 * The highest `$n` parameter a query refers to. It decides how many values are bound (the
 * incremental watermark is bound only when the query asks for it), so a `$2` that the server
 * does not read as a parameter must not count: one in a comment, a string, a dollar-quoted
 * string or a quoted identifier. The scan follows PostgreSQL's lexer that far, and no further:
 * the server has the last word on everything else.
 */
export function highestPlaceholder(query: string): number {
  let highest = 0;
  let at = 0;
  while (at < query.length) {
    const c = query[at]!;
    if (c === '-' && query[at + 1] === '-') at = lineCommentEnd(query, at);
    else if (c === '/' && query[at + 1] === '*') at = blockCommentEnd(query, at);
    else if (c === "'") at = quotedEnd(query, at, "'");
    else if (c === '"') at = quotedEnd(query, at, '"');
    else if (c === '$') {
      PARAMETER.lastIndex = at;
      const parameter = PARAMETER.exec(query);
      if (parameter) {
        highest = Math.max(highest, Number(parameter[1]));
        at += parameter[0].length;
      } else {
        at = dollarQuotedEnd(query, at);
      }
    } else if (isIdentifierStart(c)) {
      const end = identifierEnd(query, at);
      // E'...' (or e'...') is a string in which a backslash escapes the next character, \' included.
      at = end === at + 1 && (c === 'E' || c === 'e') && query[end] === "'" ? escapeStringEnd(query, end) : end;
    } else at++;
  }
  return highest;
}

/** Letters, _ and any non-ASCII character start a name; digits and $ may follow (so `a$1` is a name, not a parameter). */
function isIdentifierStart(c: string): boolean {
  return /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;
}

function identifierEnd(query: string, at: number): number {
  let end = at + 1;
  while (end < query.length && (isIdentifierStart(query[end]!) || /[0-9$]/.test(query[end]!))) end++;
  return end;
}

function lineCommentEnd(query: string, at: number): number {
  let end = at + 2;
  while (end < query.length && query[end] !== '\n' && query[end] !== '\r') end++;
  return end;
}

/** PostgreSQL's block comments nest: `/* a /* b *\/ still a comment *\/`. */
function blockCommentEnd(query: string, at: number): number {
  let depth = 0;
  let end = at;
  while (end < query.length) {
    if (query.startsWith('/*', end)) {
      depth++;
      end += 2;
    } else if (query.startsWith('*/', end)) {
      depth--;
      end += 2;
      if (depth === 0) return end;
    } else end++;
  }
  return end;
}

/** After a '...' string or a "..." identifier, in which a doubled quote stands for itself. */
function quotedEnd(query: string, at: number, quote: string): number {
  let end = at + 1;
  for (;;) {
    const close = query.indexOf(quote, end);
    if (close === -1) return query.length;
    if (query[close + 1] !== quote) return close + 1;
    end = close + 2;
  }
}

/** After an E'...' string, which starts at `at` (its quote). */
function escapeStringEnd(query: string, at: number): number {
  let end = at + 1;
  while (end < query.length) {
    const c = query[end]!;
    if (c === '\\') end += 2;
    else if (c === "'" && query[end + 1] === "'") end += 2;
    else if (c === "'") return end + 1;
    else end++;
  }
  return query.length;
}

/** After a $$...$$ or $tag$...$tag$ string starting at `at`; a `$` that starts none is passed over. */
function dollarQuotedEnd(query: string, at: number): number {
  DOLLAR_QUOTE.lastIndex = at;
  const opening = DOLLAR_QUOTE.exec(query)?.[0];
  if (opening === undefined) return at + 1;
  const close = query.indexOf(opening, at + opening.length);
  return close === -1 ? query.length : close + opening.length;
}
