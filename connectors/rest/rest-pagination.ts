/**
 * The four ways a REST datasource walks pages: a page number, an offset, a cursor read from the
 * response, or the RFC 8288 `Link: <...>; rel="next"` header. Each is a small object that says
 * which URL comes first and, given what a page answered, which comes next (or that it was the last).
 */
import { ConnectorError } from '../../src/errors.js';
import type { JsonSchema } from '../types.js';
import { valueAtPath } from './rest-records.js';

export type PaginationConfig =
  | { type: 'page'; page_param?: string; size_param?: string; size?: number; start?: number; max_pages?: number }
  | { type: 'offset'; offset_param?: string; limit_param?: string; limit?: number; start?: number; max_pages?: number }
  | { type: 'cursor'; cursor_param?: string; cursor_path: string; max_pages?: number }
  | { type: 'link'; max_pages?: number };

export const DEFAULT_MAX_PAGES = 10_000;

/** What one page answered, as pagination needs it. */
export interface PageAnswer {
  readonly url: string;
  readonly body: unknown;
  readonly records: readonly unknown[];
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface Paginator {
  readonly first: string;
  /** The next page's URL, or undefined when this page was the last. */
  next(answer: PageAnswer): string | undefined;
}

const maxPages: JsonSchema = {
  type: 'integer',
  minimum: 1,
  default: DEFAULT_MAX_PAGES,
  description: 'A guard: at most this many pages are read per cycle; reaching it with more pages announced logs a warning and ends the read.',
};

export const paginationSchema: JsonSchema = {
  type: 'object',
  description:
    'How to walk pages. Without it, one request is made. Pages are read one after another and handed to the rules as they arrive.',
  required: ['type'],
  properties: { type: { type: 'string', enum: ['page', 'offset', 'cursor', 'link'], description: 'The pagination style.' } },
  allOf: [
    {
      if: { properties: { type: { const: 'page' } } },
      then: {
        description: 'A page number (and optionally a page size) sent as query parameters; the first empty page ends the read.',
        additionalProperties: false,
        properties: {
          type: { const: 'page' },
          page_param: { type: 'string', minLength: 1, default: 'page', description: 'Query parameter holding the page number.' },
          size_param: { type: 'string', minLength: 1, default: 'per_page', description: 'Query parameter holding the page size (sent only when `size` is set).' },
          size: { type: 'integer', minimum: 1, description: 'Records per page to ask for.', examples: [100] },
          start: { type: 'integer', minimum: 0, default: 1, description: 'Number of the first page.' },
          max_pages: maxPages,
        },
      },
    },
    {
      if: { properties: { type: { const: 'offset' } } },
      then: {
        description:
          'An offset and a limit sent as query parameters; the offset grows by the records each page returned, and the first empty page ends the read.',
        additionalProperties: false,
        properties: {
          type: { const: 'offset' },
          offset_param: { type: 'string', minLength: 1, default: 'offset', description: 'Query parameter holding the offset.' },
          limit_param: { type: 'string', minLength: 1, default: 'limit', description: 'Query parameter holding the limit.' },
          limit: { type: 'integer', minimum: 1, default: 100, description: 'Records per page to ask for.' },
          start: { type: 'integer', minimum: 0, default: 0, description: 'Offset of the first page.' },
          max_pages: maxPages,
        },
      },
    },
    {
      if: { properties: { type: { const: 'cursor' } } },
      then: {
        description:
          'The next cursor is read from each response at `cursor_path` and sent as the `cursor_param` query parameter; a missing, null or empty cursor ends the read.',
        additionalProperties: false,
        required: ['cursor_path'],
        properties: {
          type: { const: 'cursor' },
          cursor_param: { type: 'string', minLength: 1, default: 'cursor', description: 'Query parameter the cursor is sent in.' },
          cursor_path: { type: 'string', minLength: 1, description: 'Dot path of the next cursor in the response.', examples: ['meta.next_cursor'] },
          max_pages: maxPages,
        },
      },
    },
    {
      if: { properties: { type: { const: 'link' } } },
      then: {
        description: 'The next page is the URL of the response\'s `Link: <...>; rel="next"` header (RFC 8288); no such link ends the read.',
        additionalProperties: false,
        properties: { type: { const: 'link' }, max_pages: maxPages },
      },
    },
  ],
};

export function paginatorFor(firstUrl: string, config: PaginationConfig | undefined): Paginator {
  switch (config?.type) {
    case undefined:
      return { first: firstUrl, next: () => undefined };
    case 'page':
      return pageNumbers(firstUrl, config);
    case 'offset':
      return offsets(firstUrl, config);
    case 'cursor':
      return cursors(firstUrl, config);
    case 'link':
      return links(firstUrl);
  }
}

function withParams(url: string, params: Record<string, string | number>): string {
  const u = new URL(url);
  for (const [name, value] of Object.entries(params)) u.searchParams.set(name, String(value));
  return u.toString();
}

function pageNumbers(base: string, config: Extract<PaginationConfig, { type: 'page' }>): Paginator {
  const pageParam = config.page_param ?? 'page';
  const sizeParams = config.size === undefined ? {} : { [config.size_param ?? 'per_page']: config.size };
  let page = config.start ?? 1;
  return {
    first: withParams(base, { ...sizeParams, [pageParam]: page }),
    next: ({ records }) => (records.length === 0 ? undefined : withParams(base, { ...sizeParams, [pageParam]: ++page })),
  };
}

function offsets(base: string, config: Extract<PaginationConfig, { type: 'offset' }>): Paginator {
  const offsetParam = config.offset_param ?? 'offset';
  const limitParams = { [config.limit_param ?? 'limit']: config.limit ?? 100 };
  let offset = config.start ?? 0;
  return {
    first: withParams(base, { ...limitParams, [offsetParam]: offset }),
    // Advancing by what came back, not by the limit asked for: a server that caps the page size loses no records.
    next: ({ records }) => (records.length === 0 ? undefined : withParams(base, { ...limitParams, [offsetParam]: (offset += records.length) })),
  };
}

function cursors(base: string, config: Extract<PaginationConfig, { type: 'cursor' }>): Paginator {
  const cursorParam = config.cursor_param ?? 'cursor';
  const seen = new Set<string>();
  return {
    first: base,
    next: ({ body }) => {
      const value = valueAtPath(body, config.cursor_path);
      if (value === undefined || value === null || value === '' || value === false) return undefined;
      if (typeof value === 'object') {
        throw new ConnectorError(`the cursor at "${config.cursor_path}" is ${Array.isArray(value) ? 'a list' : 'an object'}, not text or a number; check pagination.cursor_path`, {
          code: 'INVALID_RESPONSE',
        });
      }
      const cursor = String(value);
      if (seen.has(cursor)) throw loop(`the cursor "${cursor.slice(0, 80)}" came back a second time`);
      seen.add(cursor);
      return withParams(base, { [cursorParam]: cursor });
    },
  };
}

function links(base: string): Paginator {
  const seen = new Set<string>([base]);
  const origin = new URL(base).origin;
  return {
    first: base,
    next: ({ url, headers }) => {
      const target = nextLink(headers.link);
      if (target === undefined) return undefined;
      const next = new URL(target, url);
      // The configured headers (a token) go with every page: they must not be handed to another host.
      if (next.origin !== origin) {
        throw new ConnectorError(`the next-page link leads to another origin (${next.origin}, not ${origin}); the headers are not sent there`, {
          code: 'INVALID_RESPONSE',
        });
      }
      const text = next.toString();
      if (seen.has(text)) throw loop('the next-page link points to a page already read');
      seen.add(text);
      return text;
    },
  };
}

function loop(why: string): ConnectorError {
  return new ConnectorError(`${why}: the API would be read in a loop`, { code: 'PAGINATION_LOOP' });
}

/**
 * The target of the `rel="next"` link of a Link header (RFC 8288): `<url>; rel="next"`, several
 * links separated by commas, `rel` quoted or not and possibly holding several relation types.
 */
export function nextLink(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(', ') : header;
  const link = /<([^>]*)>((?:\s*;\s*[^;,<]*(?:"[^"]*"[^;,<]*)?)*)/g;
  for (let m = link.exec(text); m !== null; m = link.exec(text)) {
    const rel = /(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(m[2]!);
    const types = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (types.includes('next')) return m[1]!.trim();
  }
  return undefined;
}
