/**
 * Splits a template into literal text and placeholders, once, at config load. Rendering then
 * walks the parts; no regular expression runs per record.
 */

export interface LiteralPart {
  readonly kind: 'literal';
  readonly text: string;
}

export interface PlaceholderPart {
  readonly kind: 'placeholder';
  /** What is between the braces, default included: `host:-unknown`. */
  readonly raw: string;
  /** The name before `:-`: `host`, `meta.host`, `record.rule`, `rule`. */
  readonly name: string;
  /** The text after `:-`, used when the field is missing. */
  readonly fallback: string | undefined;
  /** JSON templates only: whether the placeholder sits inside a JSON string literal. */
  readonly inString: boolean;
}

export type Part = LiteralPart | PlaceholderPart;

export interface Parsed {
  readonly parts: readonly Part[];
  readonly problems: readonly string[];
}

/**
 * `{name}` and `{name:-default}` are placeholders; `{{` and `}}` are literal braces. In a JSON
 * template, outside string literals, a `{` followed by white space, `"` or `}` and every `}` are
 * JSON's own braces, so `{"text": "{rule}"}` needs no escaping.
 */
export function parseTemplate(text: string, json: boolean): Parsed {
  const parts: Part[] = [];
  const problems: string[] = [];
  let literal = '';
  let inString = false;
  const flush = () => {
    if (literal) parts.push({ kind: 'literal', text: literal });
    literal = '';
  };

  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (json && !inString) {
      if (c === '"') inString = true;
      if (c !== '{' || isJsonBrace(text[i + 1])) {
        literal += c;
        i++;
        continue;
      }
    } else if (json && inString) {
      if (c === '\\') {
        literal += text.slice(i, i + 2);
        i += 2;
        continue;
      }
      if (c === '"') inString = false;
    }

    if (c === '{') {
      if (text[i + 1] === '{') {
        literal += '{';
        i += 2;
        continue;
      }
      const close = text.indexOf('}', i + 1);
      const nextOpen = text.indexOf('{', i + 1);
      if (close < 0 || (nextOpen >= 0 && nextOpen < close)) {
        problems.push(`"{" at character ${i + 1} is not closed; write {{ for a literal brace`);
        literal += c;
        i++;
        continue;
      }
      const raw = text.slice(i + 1, close);
      const dash = raw.indexOf(':-');
      const name = dash < 0 ? raw : raw.slice(0, dash);
      if (name.trim() === '') problems.push(`{${raw}} has no name`);
      flush();
      parts.push({ kind: 'placeholder', raw, name, fallback: dash < 0 ? undefined : raw.slice(dash + 2), inString: json && inString });
      i = close + 1;
      continue;
    }
    if (c === '}') {
      if (text[i + 1] === '}') {
        literal += '}';
        i += 2;
        continue;
      }
      problems.push(`"}" at character ${i + 1} closes nothing; write }} for a literal brace`);
    }
    literal += c;
    i++;
  }
  flush();
  return { parts, problems };
}

/** After a `{` outside a JSON string: the start of a JSON object rather than of a placeholder. */
function isJsonBrace(next: string | undefined): boolean {
  return next === undefined || next === '"' || next === '}' || next === ' ' || next === '\n' || next === '\r' || next === '\t';
}
