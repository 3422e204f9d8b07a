import { expect } from 'chai';
import path from 'node:path';
import { loadConfig } from '../../src/config/load-config.js';
import { ConfigError, formatIssue } from '../../src/config/issues.js';
import { freshDirPerTest, writeFiles } from '../helpers.js';

const BASE = `datasources:
  sensors:
    type: csv
    path: data.csv
export_targets:
  out:
    type: file
    path: out.ndjson
`;

describe('config loading', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  async function load(files: Record<string, string>, env: Record<string, string> = {}) {
    writeFiles(dir, files);
    return loadConfig(path.join(dir, 'config.yaml'), { env });
  }

  /** The formatted issues of a config that must fail, with the temp folder shortened to "DIR". */
  async function problems(files: Record<string, string>, env: Record<string, string> = {}): Promise<string[]> {
    try {
      await load(files, env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.issues.map((i) => formatIssue({ ...i, file: path.basename(i.file) }).replaceAll(dir + path.sep, ''));
    }
    throw new Error('expected the config to be refused');
  }

  it("accepts the older tool's config format unchanged", async () => {
    const config = await load({
      'config.yaml': `datasources:
  my_database:
    type: "postgresql"
    host: "localhost"
    port: 5432
    database: "analytics"
    username: "user"
    password: "password"
    query: "SELECT * FROM metrics WHERE created_at > NOW() - INTERVAL '1 hour'"

processing_rules:
  - name: "high_value_alerts"
    description: "Alert on high value records"
    threshold_field: "value"
    threshold_type: "greater_than"
    threshold_value: 1000
    export_target: "alert_api"
  - name: "recent_errors"
    threshold_field: "created_at"
    threshold_type: "within_hours"
    threshold_value: 24
    export_target: "alert_api"
  - name: "complex"
    conditions:
      - {field: "value", operator: "greater_than", value: 10}
      - {field: "status", operator: "in", value: ["error", "warn"]}
      - {field: "message", operator: "contains", value: "disk"}
    export_target: "alert_api"

export_targets:
  alert_api:
    type: "rest_api"
    url: "https://alerts.example.com/api/alerts"
    method: "POST"
    headers:
      Authorization: "Bearer your_token"
`,
    });
    expect(config.rules.map((r) => r.name)).to.deep.equal(['high_value_alerts', 'recent_errors', 'complex']);
    expect(config.rules[0]!.datasources).to.deep.equal(['my_database']);
    expect(config.rules[0]!.targets).to.deep.equal(['alert_api']);
    expect(config.settings).to.deep.equal({ concurrency: 4, batch_size: 2000, log_level: 'info', shutdown_timeout: '60s', state_dir: '.state' });
  });

  it('YAML anchors and merge keys let rules share settings', async () => {
    const config = await load({
      'config.yaml': BASE,
      'rules/shared.yaml': `- &base
  name: a
  datasource: sensors
  export_target: out
  threshold_field: v
  threshold_type: is_null
- <<: *base
  name: b
  threshold_type: is_not_null
`,
    });
    expect(config.rules.map((r) => [r.name, r.datasources, r.targets])).to.deep.equal([
      ['a', ['sensors'], ['out']],
      ['b', ['sensors'], ['out']],
    ]);
    expect(config.rules[1]!.condition).to.include({ kind: 'leaf', operator: 'is_not_null' });
  });

  it('reports a wrong type with file:line:col and the key path', async () => {
    const out = await problems({
      'config.yaml': `${BASE}processing_rules:
  - name: r
    threshold_field: value
    threshold_type: greater_than
    threshold_value: 10
    export_target: out
    enabled: "yes"
`,
    });
    expect(out).to.deep.equal(['config.yaml:15:14: processing_rules[0].enabled: must be true or false']);
  });

  it('rejects unknown keys at the key, suggesting the likely one', async () => {
    const out = await problems({
      'config.yaml': `${BASE}processing_rules:
  - name: r
    threshold_field: value
    threshold_type: greater_than
    threshhold_value: 10
    export_target: out
`,
    });
    expect(out).to.deep.equal([
      'config.yaml:13:5: processing_rules[0].threshhold_value: unknown key "threshhold_value"; did you mean "threshold_value"?',
    ]);
  });

  it('suggests the closest operator and connector type', async () => {
    const out = await problems({
      'config.yaml': `datasources:
  s:
    type: csvv
    path: x.csv
export_targets:
  out: {type: file, path: o.ndjson}
processing_rules:
  - name: r
    conditions:
      - field: value
        operator: greater_thn
        value: 10
    export_target: out
`,
    });
    expect(out).to.deep.equal([
      'config.yaml:3:11: datasources.s.type: unknown datasource type "csvv"; did you mean "csv"?',
      'config.yaml:11:19: processing_rules[0].conditions[0].operator: unknown operator "greater_thn"; did you mean "greater_than"?',
    ]);
  });

  it('reports every problem at once, not only the first', async () => {
    const out = await problems({
      'config.yaml': `datasources:
  s: {type: csv}
export_targets:
  out: {type: file, path: 7, colour: red}
settings:
  concurrency: 0
`,
    });
    expect(out).to.have.length(4);
    expect(out.join('\n')).to.include('datasources.s: missing required key "path"');
    expect(out.join('\n')).to.include('export_targets.out.path: must be a string');
    expect(out.join('\n')).to.include('export_targets.out.colour: unknown key "colour"');
    expect(out.join('\n')).to.include('settings.concurrency: must be >= 1');
  });

  it('checks operator values with the position of the value', async () => {
    const out = await problems({
      'config.yaml': `${BASE}processing_rules:
  - name: r
    conditions:
      any:
        - field: host
          operator: matches
          value: "([a-z"
        - field: v
          operator: between
          value: [10, 1]
    export_target: out
`,
    });
    expect(out[0]).to.match(/^config\.yaml:15:18: processing_rules\[0\]\.conditions\.any\[0\]\.value: matches: invalid regular expression/);
    expect(out[1]).to.equal('config.yaml:18:18: processing_rules[0].conditions.any[1].value: between needs low <= high, got [10, 1]; swap them');
  });

  it('refuses undefined datasources and targets, and duplicate names, with positions', async () => {
    const out = await problems({
      'config.yaml': `${BASE}processing_rules:
  - name: r
    datasource: sensor
    threshold_field: v
    threshold_type: is_not_null
    export_targets: [out, nowhere]
  - name: r
    threshold_field: v
    threshold_type: is_null
    export_target: out
`,
    });
    expect(out).to.deep.equal([
      'config.yaml:11:17: processing_rules[0].datasource: datasource "sensor" is not defined in datasources; did you mean "sensors"?',
      'config.yaml:14:27: processing_rules[0].export_targets[1]: export target "nowhere" is not defined in export_targets; defined: out',
      'config.yaml:15:11: processing_rules[1].name: duplicate rule name "r"; rule names must be unique (first defined at config.yaml:10:11)',
    ]);
  });

  it('refuses a rule without condition or target', async () => {
    const out = await problems({ 'config.yaml': `${BASE}processing_rules:\n  - name: lonely\n` });
    expect(out).to.deep.equal([
      'config.yaml:10:5: processing_rules[0]: rule "lonely" has no condition: give threshold_field, threshold_type and threshold_value, or conditions',
      'config.yaml:10:5: processing_rules[0]: rule "lonely" has no export target: add export_target: <name> or export_targets: [<name>, ...]',
    ]);
  });

  it('reports YAML syntax errors with their position', async () => {
    const out = await problems({ 'config.yaml': 'datasources:\n  s: {type: csv\nexport_targets: {}\n' });
    expect(out[0]).to.match(/^config\.yaml:\d+:\d+: YAML syntax: /);
  });

  it('reports duplicate keys', async () => {
    const out = await problems({ 'config.yaml': `${BASE}export_targets:\n  x: {type: console}\n` });
    expect(out[0]).to.match(/^config\.yaml:9:1: duplicate key/);
  });

  describe('environment variables', () => {
    it('substitutes ${VAR} and ${VAR:-default} in strings', async () => {
      const config = await load(
        {
          'config.yaml': `datasources:
  db:
    type: postgresql
    host: \${PGHOST:-localhost}
    port: \${PGPORT}
    password: "\${PGPASSWORD}"
    query: "SELECT \${COLS:-*} FROM t -- $\${literal}"
export_targets:
  out: {type: file, path: "\${OUT_DIR}/x.ndjson"}
`,
        },
        { PGPORT: '6543', PGPASSWORD: 's3cr3t:with:colons', OUT_DIR: '/var/out' },
      );
      expect(config.datasources.db).to.include({ host: 'localhost', port: 6543, password: 's3cr3t:with:colons', query: 'SELECT * FROM t -- ${literal}' });
      expect(config.targets.out!.path).to.equal('/var/out/x.ndjson');
    });

    it('an unquoted reference becomes a number or boolean only when it is exactly one; any other text arrives unchanged', async () => {
      const config = await load(
        {
          'config.yaml': `datasources:
  db:
    type: postgresql
    port: \${PORT}
    ssl: \${SSL}
    password: \${PW}
    query: \${Q}
export_targets:
  out:
    type: file
    path: \${OUT}
`,
        },
        { PORT: '6543', SSL: 'true', PW: "'quoted' #1 [x]", Q: 'SELECT 1 # not a comment', OUT: 'out/alerts #1.ndjson' },
      );
      expect(config.datasources.db).to.include({ port: 6543, ssl: true, password: "'quoted' #1 [x]", query: 'SELECT 1 # not a comment' });
      expect(config.targets.out!.path).to.equal('out/alerts #1.ndjson');
    });

    it('a string key whose unquoted variable holds digits says to quote the reference', async () => {
      const out = await problems({ 'config.yaml': BASE.replace('path: data.csv', 'path: ${P}') }, { P: '123456' });
      expect(out).to.deep.equal([
        'config.yaml:4:11: datasources.sensors.path: must be a string: the environment variable here holds a number or true/false; quote the reference ("${VAR}") to keep it text',
      ]);
    });

    it('a quoted reference stays a string', async () => {
      const config = await load({ 'config.yaml': BASE.replace('path: data.csv', 'path: "${N}"') }, { N: '42' });
      expect(config.datasources.sensors!.path).to.equal('42');
    });

    it('a missing variable without default is an error naming it and its position', async () => {
      const out = await problems({ 'config.yaml': BASE.replace('path: out.ndjson', 'path: ${OUT}/a.ndjson') });
      expect(out).to.deep.equal([
        'config.yaml:8:11: export_targets.out.path: environment variable OUT is not set; set it (e.g. in the service\'s EnvironmentFile) or give a default: ${OUT:-value}',
      ]);
    });

    it('does not echo the value of a secret into errors', async () => {
      const out = await problems(
        { 'config.yaml': BASE.replace('path: out.ndjson', 'path: out.ndjson\n    password: ${TOKEN}') },
        { TOKEN: 'hunter2' },
      );
      expect(out.join('\n')).to.include('unknown key "password"');
      expect(out.join('\n')).not.to.include('hunter2');
    });

    it('a url of the wrong scheme is refused as a URL, without echoing it (the password in it came from the environment)', async () => {
      const config = BASE.replace('export_targets:', '  db:\n    type: postgresql\n    url: postgresql+psycopg://reporter:${PGPASSWORD}@127.0.0.1:5432/test\n    query: SELECT 1\nexport_targets:');
      const out = await problems({ 'config.yaml': config }, { PGPASSWORD: 'TopSecretFromEnv' });
      expect(out.join('\n')).to.match(/datasources\.db\.url: must be a postgres:\/\/ or postgresql:\/\/ URL/);
      expect(out.join('\n')).not.to.include('TopSecretFromEnv');
      expect(out.join('\n')).not.to.include('duration');
    });
  });

  describe('rule files', () => {
    const RULE = (name: string) => `- name: ${name}
  threshold_field: value
  threshold_type: greater_than
  threshold_value: 1
  export_target: out
`;

    it('merges every rules/*.yaml (at any depth, in name order) and skips *.test.yaml', async () => {
      const config = await load({
        'config.yaml': `${BASE}processing_rules:\n${RULE('own').replace(/^/gm, '  ')}`,
        'rules/b.yaml': RULE('b'),
        'rules/a.yml': `processing_rules:\n${RULE('a').replace(/^/gm, '  ')}`,
        'rules/team/c.yaml': RULE('c'),
        'rules/a.test.yaml': 'not: a rule file',
        'rules/notes.txt': 'ignored',
      });
      expect(config.rules.map((r) => r.name)).to.deep.equal(['own', 'a', 'b', 'c']);
      expect(config.ruleFiles.map((f) => path.basename(f))).to.deep.equal(['a.yml', 'b.yaml', 'c.yaml']);
    });

    it('reads rules_dir and include globs relative to the config file', async () => {
      const config = await load({
        'config.yaml': `${BASE}rules_dir: alerting\ninclude: ["teams/*/rules*.yaml"]\n`,
        'alerting/x.yaml': RULE('x'),
        'teams/ops/rules.yaml': RULE('ops'),
        'teams/ops/rules.test.yaml': 'tests: not rules',
        'rules/ignored.yaml': RULE('ignored'),
      });
      expect(config.rules.map((r) => r.name)).to.deep.equal(['x', 'ops']);
    });

    it('points errors into the rule file', async () => {
      const out = await problems({
        'config.yaml': BASE,
        'rules/alerts.yaml': `${RULE('fine')}- name: broken
  threshold_field: value
  threshold_type: between
  threshold_value: 5
  export_target: outt
`,
      });
      expect(out).to.deep.equal([
        'alerts.yaml:9:20: [1].threshold_value: between needs a list [low, high], got 5',
        'alerts.yaml:10:18: [1].export_target: export target "outt" is not defined in export_targets; did you mean "out"?',
      ]);
    });

    it('finds duplicate names across files', async () => {
      const out = await problems({ 'config.yaml': BASE, 'rules/one.yaml': RULE('same'), 'rules/two.yaml': RULE('same') });
      expect(out).to.have.length(1);
      expect(out[0]).to.match(/^two\.yaml:1:9: \[0\]\.name: duplicate rule name "same"; rule names must be unique \(first defined at rules\/one\.yaml:1:9\)$/);
    });

    it('a missing rules_dir or an include that matches nothing is an error', async () => {
      const out = await problems({ 'config.yaml': `${BASE}rules_dir: nope\ninclude: ["x/*.yaml"]\n` });
      expect(out[0]).to.match(/^config\.yaml:9:12: rules_dir: rules_dir "nope" is not a folder/);
      expect(out[1]).to.equal('config.yaml:10:11: include[0]: no file matches "x/*.yaml"');
    });
  });

  it('points errors in a list of conditions at the item', async () => {
    const out = await problems({
      'config.yaml': `${BASE}processing_rules:
  - name: r
    conditions:
      - {field: a, operator: equals, value: 1}
      - {field: b, operator: between, value: [9, 1]}
    export_target: out
`,
    });
    expect(out).to.deep.equal(['config.yaml:13:46: processing_rules[0].conditions[1].value: between needs low <= high, got [9, 1]; swap them']);
  });

  it('a threshold_value without threshold_field and threshold_type is an error, not ignored', async () => {
    const out = await problems({ 'config.yaml': `${BASE}processing_rules:\n  - {name: r, threshold_value: 5, export_target: out}\n` });
    expect(out).to.deep.equal(['config.yaml:10:5: processing_rules[0]: rule "r" needs threshold_field and threshold_type alongside the other threshold_* keys']);
  });

  it('an empty processing_rules: means no rules in this file', async () => {
    const config = await load({ 'config.yaml': `${BASE}processing_rules:\n`, 'rules/a.yaml': '- {name: a, threshold_field: v, threshold_type: is_null, export_target: out}\n' });
    expect(config.rules.map((r) => r.name)).to.deep.equal(['a']);
  });

  it('rules_dir: . does not read the config file itself as a rule file', async () => {
    const config = await load({ 'config.yaml': `${BASE}rules_dir: .\n`, 'more.yaml': '- {name: m, threshold_field: v, threshold_type: is_null, export_target: out}\n' });
    expect(config.rules.map((r) => r.name)).to.deep.equal(['m']);
  });

  it('two file targets writing the same path is an error', async () => {
    const out = await problems({ 'config.yaml': BASE + '  again:\n    type: file\n    path: ./out.ndjson\n' });
    expect(out).to.deep.equal(['config.yaml:11:11: export_targets.again.path: export target "out" writes the same path; give each file target its own path, or send both rules to one target']);
  });

  it('checks connector keys beyond the schema (the CSV encoding)', async () => {
    const out = await problems({ 'config.yaml': BASE.replace('path: data.csv', 'path: data.csv\n    encoding: klingon') });
    expect(out[0]).to.match(/^config\.yaml:5:15: datasources\.sensors\.encoding: unknown encoding "klingon"/);
  });

  it('a missing config file is an error naming it', async () => {
    const out = await problems({});
    expect(out).to.deep.equal(['config.yaml:1:1: cannot read config: no such file']);
  });
});
