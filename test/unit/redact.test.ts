import { expect } from 'chai';
import { redactUrl } from '../../src/util/redact.js';

describe('redactUrl (src/util/redact.ts)', () => {
  it('hides user info and the query values whose names say they are credentials', () => {
    const url = 'https://me:pa55@api.example/x?pwd=p1&sig=s1&sid=s2&sessionid=s3&access-token=s4&apikey=s5&user_credentials=s6&pass=s7&page=2&code_status=ok';
    const shown = new URL(redactUrl(url));
    expect(shown.username).to.equal('***');
    expect(shown.password).to.equal('');
    for (const name of ['pwd', 'sig', 'sid', 'sessionid', 'access-token', 'apikey', 'user_credentials', 'pass']) {
      expect(shown.searchParams.get(name), name).to.equal('***');
    }
    expect(shown.searchParams.get('page')).to.equal('2');
    expect(shown.searchParams.get('code_status')).to.equal('ok');
    // a name merely containing "pass" or "sig" is data
    const data = new URL(redactUrl('https://api.example/x?passenger=3&signal=high&design=a'));
    expect([...data.searchParams.values()]).to.deep.equal(['3', 'high', 'a']);
  });
});
