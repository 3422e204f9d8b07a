/** Query parameter names that hold credentials: the common words, and the short forms (`pwd`, `sig`, `sid`) used on their own. */
const SECRET_PARAMETER = /token|key|secret|passw|signature|auth|credential|session|^(pwd|sig|sid|pass)$/i;

/** A URL fit for a log line: user and password replaced, query values that look like secrets hidden. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '***';
      u.password = '';
    }
    for (const key of [...u.searchParams.keys()]) {
      if (SECRET_PARAMETER.test(key)) u.searchParams.set(key, '***');
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
}

const SECRET_ASSIGNMENT = /((?:token|secret|password|passwd|api[_-]?key|auth\w*|signature)["']?\s*[=:]\s*["']?)(?!Bearer\b|Basic\b)[^\s"'&,;]+/gi;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;

/** Text from elsewhere (an HTTP error body) fit for a log line: values that look like credentials hidden. */
export function redactSecrets(text: string): string {
  return text.replace(BEARER, '$1 ***').replace(SECRET_ASSIGNMENT, '$1***');
}
