import { expect } from 'chai';
import { highestPlaceholder } from '../../connectors/postgres/postgres-placeholders.js';

describe('postgresql query parameters: which $n the server will read', () => {
  it('counts $n where the server reads a parameter', () => {
    expect(highestPlaceholder('SELECT 1')).to.equal(0);
    expect(highestPlaceholder('SELECT * FROM t WHERE a = $1 AND b = $12')).to.equal(12);
    expect(highestPlaceholder('SELECT * FROM t WHERE a=$2::int')).to.equal(2);
    expect(highestPlaceholder("SELECT '$9', $1")).to.equal(1);
  });

  it('skips -- comments to the end of the line, and /* */ comments, nested as PostgreSQL nests them', () => {
    expect(highestPlaceholder('SELECT id FROM t -- since $1\nORDER BY id')).to.equal(0);
    expect(highestPlaceholder('SELECT id FROM t -- since $1')).to.equal(0);
    expect(highestPlaceholder('SELECT id -- $5\r, $1 FROM t')).to.equal(1);
    expect(highestPlaceholder('SELECT /* $1 */ id FROM t')).to.equal(0);
    expect(highestPlaceholder('SELECT /* outer /* inner $3 */ still the comment $4 */ $1')).to.equal(1);
    expect(highestPlaceholder('SELECT 1 /* never closed $2')).to.equal(0);
  });

  it('skips dollar-quoted strings, with or without a tag', () => {
    expect(highestPlaceholder('SELECT 1 AS id, $$price in $2 or $3$$ AS note')).to.equal(0);
    expect(highestPlaceholder('SELECT $note$ a $$ inside, $4 $note$ AS note, $1')).to.equal(1);
    expect(highestPlaceholder('SELECT $a$ $1 $b$ $2 $a$')).to.equal(0);
    expect(highestPlaceholder('SELECT $_x1$ $7 $_x1$, $2')).to.equal(2);
  });

  it("skips '...' and E'...' strings, the latter with backslash escapes, and \"quoted\" identifiers", () => {
    expect(highestPlaceholder("SELECT 'it''s $4', $1")).to.equal(1);
    expect(highestPlaceholder("SELECT E'it\\'s $4', $1")).to.equal(1);
    expect(highestPlaceholder("SELECT e'a\\\\', $2")).to.equal(2);
    // A backslash ends nothing in a standard string: the string closes at the quote after it.
    expect(highestPlaceholder("SELECT 'a\\', $2")).to.equal(2);
    expect(highestPlaceholder('SELECT 1 AS "odd $3 ""name""", $1')).to.equal(1);
  });

  it('reads $ inside a name as part of the name, not a parameter', () => {
    expect(highestPlaceholder('SELECT price$1 FROM t')).to.equal(0);
    expect(highestPlaceholder("SELECT some'$2'")).to.equal(0);
    expect(highestPlaceholder('SELECT x$ FROM t WHERE a = $1')).to.equal(1);
  });
});
