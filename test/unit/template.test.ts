import { expect } from 'chai';
import { ConnectorError } from '../../src/errors.js';
import { compileTemplate, templateIssues, type CompileOptions, type RunValues } from '../../src/template/template.js';

const RUN: RunValues = { rule: 'high', datasource: 'sensors', runId: 'r1', matchedAt: '2026-03-04T05:06:07.890Z', part: 3 };

function render(text: string, context: CompileOptions['context'], record?: Record<string, unknown>, run: RunValues = RUN): string {
  const t = compileTemplate(text, { context });
  expect(t.issues, t.issues.join('\n')).to.deep.equal([]);
  return t.render(run, record);
}

function failure(fn: () => unknown): ConnectorError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConnectorError);
    return err as ConnectorError;
  }
  expect.fail('should have thrown');
}

describe('templates', () => {
  describe('names', () => {
    it('fills the run-level names', () => {
      expect(render('{rule}/{datasource}/{date}/{time}/{run_id}/{part}', 'text')).to.equal('high/sensors/2026-03-04/050607/r1/3');
    });

    it('reads record fields, dotted paths, and a key that contains the dot before the path', () => {
      const record = { id: 7, meta: { host: 'db-1', tags: ['a'] }, 'a.b': 'direct', a: { b: 'nested' } };
      expect(render('{id} {meta.host} {meta.tags} {a.b}', 'text', record)).to.equal('7 db-1 ["a"] direct');
    });

    it('metadata fields come from the record, or from the run when the record has none', () => {
      expect(render('{_rule} {_datasource} {_run_id} {_matched_at}', 'text', {})).to.equal('high sensors r1 2026-03-04T05:06:07.890Z');
      expect(render('{_rule}', 'text', { _rule: 'from-record' })).to.equal('from-record');
    });

    it('run-level names are reserved: a record field of that name is {record.name}', () => {
      expect(render('{rule} {record.rule}', 'text', { rule: 'field' })).to.equal('high field');
    });

    it('{.} and {record} are the whole record as JSON', () => {
      expect(render('{.}', 'text', { a: 1 })).to.equal('{"a":1}');
      expect(render('{record}', 'text', { a: 1 })).to.equal('{"a":1}');
    });

    it('{{ and }} are literal braces', () => {
      expect(render('{{x}} {{{rule}}}', 'text')).to.equal('{x} {high}');
    });

    it('field names are data: constructor, __proto__ and toString are not read from the prototype', () => {
      const t = compileTemplate('{constructor}/{__proto__}/{toString}/{a.constructor}', { context: 'text' });
      expect(failure(() => t.render(RUN, { a: {} })).code).to.equal('TEMPLATE_MISSING_FIELD');
      const record = JSON.parse('{"__proto__": "p", "constructor": "c", "toString": "t", "a": {"constructor": "ac"}}');
      expect(t.render(RUN, record)).to.equal('c/p/t/ac');
    });
  });

  describe('static information', () => {
    it('lists placeholders, run names and fields, and says whether the output differs per record', () => {
      const t = compileTemplate('alerts:{rule}:{id}:{meta.host}:{record.rule}', { context: 'key' });
      expect(t.placeholders).to.deep.equal(['rule', 'id', 'meta.host', 'record.rule']);
      expect(t.runNames).to.deep.equal(['rule']);
      expect(t.fields).to.deep.equal(['id', 'meta.host', 'rule']);
      expect(t.usesRecord).to.equal(true);
      expect(compileTemplate('{rule}/{date}', { context: 'key' }).usesRecord).to.equal(false);
    });

    it('reports names a target does not supply, and fields where a target allows none', () => {
      const options: CompileOptions = { context: 'path', names: ['rule', 'date'], fields: false };
      expect(templateIssues('out/{part}/{host}.ndjson', options, 'path')).to.deep.equal([
        { key: 'path', message: 'unknown placeholder {part} in the path; the path can use {rule}, {date}' },
        { key: 'path', message: 'unknown placeholder {host} in the path; the path can use {rule}, {date}' },
      ]);
    });

    it('reports syntax problems, and refuses to render a template that has any', () => {
      expect(compileTemplate('a{rule', { context: 'text' }).issues).to.deep.equal(['"{" at character 2 is not closed; write {{ for a literal brace']);
      expect(compileTemplate('a}b', { context: 'text' }).issues).to.deep.equal(['"}" at character 2 closes nothing; write }} for a literal brace']);
      expect(compileTemplate('{}', { context: 'text' }).issues).to.deep.equal(['{} has no name']);
      expect(failure(() => compileTemplate('{}', { context: 'text' }).render(RUN)).code).to.equal('TEMPLATE_INVALID');
    });
  });

  describe('missing fields and defaults', () => {
    it('a missing or null field fails with TEMPLATE_MISSING_FIELD naming the field and the template', () => {
      const t = compileTemplate('alert:{host}', { context: 'key', what: 'the key' });
      for (const record of [{}, { host: null }]) {
        const err = failure(() => t.render(RUN, record));
        expect(err.code).to.equal('TEMPLATE_MISSING_FIELD');
        expect(err.retryable).to.equal(false);
        expect(err.message).to.include('"alert:{host}"').and.include('field "host"');
        expect(err.details).to.deep.equal({ field: 'host', template: 'alert:{host}' });
      }
    });

    it('{name:-default} fills in the default, escaped like a value', () => {
      expect(render('alert:{host:-unknown}', 'key', {})).to.equal('alert:unknown');
      expect(render('out/{host:-a/b}', 'path', {})).to.equal('out/a_b');
      expect(render('alert:{host:-}', 'key', {})).to.equal('alert:');
      expect(render('{"n": {count:-0}, "s": {name:-none}, "t": "{name:-x"y}"}', 'json', {})).to.equal('{"n": 0, "s": "none", "t": "x\\"y"}');
    });

    it('an empty string is a value, not missing', () => {
      expect(render('[{host}]', 'text', { host: '' })).to.equal('[]');
    });

    it('a run-level name the caller did not supply fails the same way', () => {
      const { part: _part, ...noPart } = RUN;
      expect(failure(() => compileTemplate('{part}', { context: 'key' }).render(noPart)).code).to.equal('TEMPLATE_MISSING_FIELD');
    });
  });

  describe('escaping by place', () => {
    const hostile = ['../../etc', '..', '.', 'a/b\\c', 'x\ny\rz', 'a?b=c&d', '@evil.com', '"}', '%2e%2e'];

    it('path: each value is one safe segment that cannot climb out of the folder', () => {
      for (const value of hostile) {
        const out = render('out/{v}.ndjson', 'path', { v: value });
        expect(out, value).to.match(/^out\/[A-Za-z0-9._-]+\.ndjson$/);
        expect(out.split('/')[1], value).not.to.match(/^\.\.?\.ndjson$/);
      }
      expect(render('out/{v}', 'path', { v: '../../etc' })).to.equal('out/.._.._etc');
      expect(render('out/{v}', 'path', { v: '..' })).to.equal('out/__');
    });

    it('key: values kept as they are except control characters and "/", and "." / ".." alone', () => {
      expect(render('alerts:{v}', 'key', { v: 'db 1:é' })).to.equal('alerts:db 1:é');
      expect(render('{rule}/{v}/x', 'key', { v: '../../etc' })).to.equal('high/.._.._etc/x');
      expect(render('a/{v}/b', 'key', { v: '..' })).to.equal('a/__/b');
      expect(render('k:{v}', 'key', { v: 'x\ny\rz\u0000\u007f' })).to.equal('k:x_y_z__');
    });

    it('key: a value right after `name=` is a Hive partition value, %XX-escaped as Hive and Spark write one (readers decode it)', () => {
      const text = 'alerts/rule={v}/date={date}/x.parquet';
      expect(render(text, 'key', { v: 'latency>=500' })).to.equal('alerts/rule=latency>%3D500/date=2026-03-04/x.parquet');
      expect(render(text, 'key', { v: 'a/b' })).to.equal('alerts/rule=a%2Fb/date=2026-03-04/x.parquet');
      expect(render(text, 'key', { v: 'cpu%2Fmem' })).to.equal('alerts/rule=cpu%252Fmem/date=2026-03-04/x.parquet');
      expect(render(text, 'key', { v: 'x\ny' })).to.equal('alerts/rule=x%0Ay/date=2026-03-04/x.parquet');
      expect(decodeURIComponent(render('rule={v}', 'key', { v: `"#%'*/:=?\\{[]^ é` }).slice('rule='.length))).to.equal(`"#%'*/:=?\\{[]^ é`);
      // elsewhere in a key, values are kept as before
      expect(render('k/{v}-x=a{v}', 'key', { v: 'a=b' })).to.equal('k/a=b-x=aa=b');
    });

    it('key: a lone UTF-16 surrogate in a value or a default becomes U+FFFD, so the key is well-formed text (encodeURIComponent takes it)', () => {
      const key = render('k:{v}:{w:-\udc00}', 'key', { v: 'a\ud800b' });
      expect(key).to.equal('k:a\ufffdb:\ufffd');
      expect(() => encodeURIComponent(key)).not.to.throw();
      expect(render('k:{v}', 'key', { v: '\ud83d\ude00' })).to.equal('k:\ud83d\ude00');
    });

    it('url: each value is percent-encoded, so it cannot add a segment, a parameter or change the host', () => {
      expect(render('https://api.example.com/items/{v}?q={w}', 'url', { v: '../../admin', w: 'a?b=c&d#e' })).to.equal(
        'https://api.example.com/items/..%2F..%2Fadmin?q=a%3Fb%3Dc%26d%23e',
      );
      const url = new URL(render('https://api.example.com/u/{v}', 'url', { v: '@evil.com/x' }));
      expect(url.host).to.equal('api.example.com');
      expect(url.pathname).to.equal('/u/%40evil.com%2Fx');
      expect(render('/x/{v}', 'url', { v: 'a\r\nHost: evil' })).to.equal('/x/a%0D%0AHost%3A%20evil');
      expect(render('/x/{v}', 'url', { v: 'bad\ud800' })).to.equal('/x/bad%EF%BF%BD');
    });

    it('url: a value of "." or ".." in the path cannot move the request to another path; in the query it stays as it is', () => {
      const text = 'http://api.example/api/hosts/{host}/alerts?from={host}';
      expect(new URL(render(text, 'url', { host: '..' })).pathname).to.equal('/api/hosts/__/alerts');
      expect(new URL(render(text, 'url', { host: '.' })).pathname).to.equal('/api/hosts/_/alerts');
      expect(new URL(render(text, 'url', { host: '..' })).searchParams.get('from')).to.equal('..');
      expect(render('/x/{v:-..}/y', 'url', {})).to.equal('/x/__/y');
      expect(render('/x/{v}/y', 'url', { v: '...' })).to.equal('/x/.../y');
    });

    it('url: a placeholder may not choose the scheme or the host', () => {
      for (const text of ['https://{host}/x', '{scheme}://example.com/', 'https://api.{domain}/x', 'https://user:{pw}@h/']) {
        expect(compileTemplate(text, { context: 'url' }).issues, text).to.have.length(1);
      }
      expect(compileTemplate('https://h.example/{a}?b={b}#{c}', { context: 'url' }).issues).to.deep.equal([]);
      expect(compileTemplate('https://h.example?{a}', { context: 'url' }).issues).to.deep.equal([]);
    });

    it('json: inside a string a value is escaped text; standing alone it keeps its JSON type', () => {
      const body = '{"text": "Rule {rule}: {value} on {host}", "value": {value}, "ok": {ok}, "tags": {tags}, "id": "{value}"}';
      const out = render(body, 'json', { value: 1500, host: 'db"1', ok: true, tags: ['a', 'b'] });
      expect(JSON.parse(out)).to.deep.equal({ text: 'Rule high: 1500 on db"1', value: 1500, ok: true, tags: ['a', 'b'], id: '1500' });
    });

    it('json: a hostile value never breaks out of its string or its value', () => {
      const body = '{"summary": "{msg}", "detail": {msg}, "n": 1}';
      for (const msg of ['"}, "admin": true, "x": {"', '\\', '\n\r\u2028\u0000', '</script>', '"}']) {
        const parsed = JSON.parse(render(body, 'json', { msg }));
        expect(parsed, msg).to.deep.equal({ summary: msg, detail: msg, n: 1 });
      }
    });

    it('json: the whole record standing alone is an object, inside a string it is JSON text', () => {
      expect(JSON.parse(render('{"record": {.}, "raw": "{record}"}', 'json', { a: 1 }))).to.deep.equal({ record: { a: 1 }, raw: '{"a":1}' });
      expect(JSON.parse(render('[{.}]', 'json', { a: 1 }))).to.deep.equal([{ a: 1 }]);
    });

    it('json: JSON braces need no escaping; a template that is not JSON once filled in is an issue', () => {
      expect(render('{"a": {"b": {}}, "c": "{{x}}"}', 'json')).to.equal('{"a": {"b": {}}, "c": "{x}"}');
      expect(compileTemplate('{"a": {v}x}', { context: 'json' }).issues[0]).to.match(/^the body is not valid JSON once its placeholders are filled in/);
    });

    it('text: values as they are', () => {
      expect(render('{v}', 'text', { v: '../"x"\n' })).to.equal('../"x"\n');
    });
  });

  describe('bind', () => {
    it('fills run-level values once and renders records with the same result as render', () => {
      const t = compileTemplate('alerts:{rule}:{date}:{id}', { context: 'key' });
      const one = t.bind(RUN);
      expect(one({ id: 1 })).to.equal(t.render(RUN, { id: 1 }));
      expect(one({ id: 'x/y' })).to.equal('alerts:high:2026-03-04:x_y');
      expect(compileTemplate('{rule}-{date}', { context: 'path' }).bind(RUN)()).to.equal('high-2026-03-04');
    });

    it('renders many records quickly (no parsing per record)', () => {
      const one = compileTemplate('alerts:{rule}:{id}:{meta.host}', { context: 'key' }).bind(RUN);
      const records = Array.from({ length: 100_000 }, (_, i) => ({ id: i, meta: { host: `h${i % 10}` } }));
      const start = performance.now();
      let length = 0;
      for (const record of records) length += one(record).length;
      expect(length).to.be.greaterThan(0);
      expect(performance.now() - start).to.be.lessThan(1000);
    });
  });
});

describe('templates: values holding big integers', () => {
  it('an object or list with a BigInt inside renders as JSON with the integer exact, in every context', () => {
    const record = { tags: { id: 12345678901234567890n, list: [1n] }, n: 9007199254740993n };
    expect(render('{tags}', 'text', record)).to.equal('{"id":12345678901234567890,"list":[1]}');
    expect(render('k:{tags}', 'key', record)).to.equal('k:{"id":12345678901234567890,"list":[1]}'.replace(/\//g, '_'));
    expect(render('{"t": {tags}, "n": {n}}', 'json', record)).to.equal('{"t": {"id":12345678901234567890,"list":[1]}, "n": 9007199254740993}');
  });
});
