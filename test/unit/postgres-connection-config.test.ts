import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { resolveConnection } from '../../connectors/postgres/postgres-connection.js';
import { parseTableName, qualified, quoteIdent, arrayLiteral, copyField, valueText } from '../../connectors/postgres/postgres-sql.js';
import { makeTempDir } from '../helpers.js';

describe('postgresql connection keys', () => {
  it('reads a url, lets keys next to it override its parts, and never puts the password in the label', () => {
    const r = resolveConnection({ url: 'postgres://app:p%40ss%2Fword@db.internal:6543/shop?sslmode=require', database: 'other' }, '.');
    expect(r.pg).to.include({ host: 'db.internal', port: 6543, database: 'other', user: 'app', password: 'p@ss/word', application_name: 'threshold-processor' });
    expect(r.pg.ssl).to.deep.equal({ rejectUnauthorized: false });
    expect(r.label).to.equal('db.internal:6543/other as app');
    expect(r.secrets).to.include('p@ss/word');
  });

  it('a url whose password breaks it (an unencoded "/", a bare "%") is refused without repeating any of it', () => {
    for (const url of ['postgres://reporter:12345/Secret@127.0.0.1:5432/test', 'postgres://reporter:ab%zzSecret@127.0.0.1:5432/test']) {
      let message = '';
      try {
        resolveConnection({ url }, '.');
      } catch (err) {
        message = (err as Error).message;
        expect((err as { code?: string }).code).to.equal('INVALID_CONFIG');
      }
      expect(message, url).to.match(/percent-encode|%25/);
      expect(message).to.not.include('Secret');
    }
  });

  it('every session is pinned to UTC, as zone-less timestamps are read', () => {
    expect(resolveConnection({ url: 'postgres://h/d' }, '.').pg.options).to.equal('-c TimeZone=UTC');
  });

  it('takes the older tool\'s keys, with localhost:5432 by default and TLS off', () => {
    const r = resolveConnection({ database: 'analytics', username: 'user', password: 'pw1' }, '.');
    expect(r.pg).to.include({ host: 'localhost', port: 5432, database: 'analytics', user: 'user', password: 'pw1', ssl: false });
    expect(r.label).to.equal('localhost:5432/analytics as user');
  });

  it('ssl: verify checks the certificate against ssl_ca, read relative to the config file', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n');
      const r = resolveConnection({ ssl: 'verify', ssl_ca: 'ca.pem' }, dir);
      expect(r.pg.ssl).to.deep.equal({ rejectUnauthorized: true, ca: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' });
      expect(resolveConnection({ ssl: true }, dir).pg.ssl).to.deep.equal({ rejectUnauthorized: false });
      expect(resolveConnection({ url: 'postgres://h/d?sslmode=verify-full' }, dir).pg.ssl).to.deep.equal({ rejectUnauthorized: true });
    } finally {
      cleanup();
    }
  });

  it('statement_timeout and connect_timeout are durations', () => {
    const r = resolveConnection({ statement_timeout: '1m30s', connect_timeout: '2s' }, '.');
    expect(r.pg).to.include({ statement_timeout: 90_000, connectionTimeoutMillis: 2000 });
    expect(resolveConnection({}, '.').pg.statement_timeout).to.equal(undefined);
  });
});

describe('postgresql identifiers and values', () => {
  it('quotes any name into one identifier', () => {
    expect(quoteIdent('value"; DROP TABLE x; --')).to.equal('"value""; DROP TABLE x; --"');
    expect(() => quoteIdent('x'.repeat(64))).to.throw(/longer than PostgreSQL's 63 bytes/);
    expect(() => quoteIdent('é'.repeat(32))).to.throw(/63 bytes/);
    expect(() => quoteIdent('')).to.throw(/empty name/);
  });

  it('reads table names as PostgreSQL does: unquoted parts folded, quoted parts kept', () => {
    expect(parseTableName('Alerts')).to.deep.equal({ schema: undefined, table: 'alerts' });
    expect(parseTableName('Ops.Alerts')).to.deep.equal({ schema: 'ops', table: 'alerts' });
    // PostgreSQL folds only A-Z of an unquoted name
    expect(parseTableName('Ops.ÄrgerTable')).to.deep.equal({ schema: 'ops', table: 'Ärgertable' });
    expect(parseTableName('"My.Schema"."Odd ""name"""')).to.deep.equal({ schema: 'My.Schema', table: 'Odd "name"' });
    expect(qualified(parseTableName('"My.Schema"."Odd ""name"""'))).to.equal('"My.Schema"."Odd ""name"""');
    for (const bad of ['a.b.c', '', '.a', 'a.', '"open', 'a"b']) expect(() => parseTableName(bad), bad).to.throw(/not a table name/);
    // The server would keep the first 63 bytes and write to another table than the one named.
    expect(parseTableName(`ops.${'t'.repeat(63)}`).table).to.have.lengthOf(63);
    expect(() => parseTableName(`ops.${'t'.repeat(64)}`)).to.throw(/the table name is 64 bytes long, more than PostgreSQL's 63; choose a shorter table name/);
    expect(() => parseTableName(`"${'é'.repeat(32)}".alerts`)).to.throw(/the schema name is 64 bytes long/);
  });

  it('writes values as COPY text PostgreSQL reads back exactly', () => {
    expect(copyField(valueText('tab\there\nand \\ back', false))).to.equal('tab\\there\\nand \\\\ back');
    expect(copyField(valueText(null, false))).to.equal('\\N');
    expect(valueText('12345678901234567890.123', false)).to.equal('12345678901234567890.123');
    expect(valueText(12345678901234567890n, false)).to.equal('12345678901234567890');
    expect(valueText(new Date('2026-11-24T08:00:00Z'), false)).to.equal('2026-11-24T08:00:00.000Z');
    expect(valueText({ a: [1, 2n] }, false)).to.equal('{"a":[1,"2"]}');
    expect(valueText(['a', null, 'b,c', 'd"e\\f'], true)).to.equal('{"a",NULL,"b,c","d\\"e\\\\f"}');
    expect(arrayLiteral([[1, 2], [3, null]])).to.equal('{{"1","2"},{"3",NULL}}');
    // An invalid Date is NULL, as JSON writes it, not a RangeError that fails the batch.
    expect(arrayLiteral([new Date(0), new Date(Number.NaN)])).to.equal('{"1970-01-01T00:00:00.000Z",NULL}');
    expect(valueText(Infinity, false)).to.equal('Infinity');
  });
});
