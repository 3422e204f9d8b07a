import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, parseNdjson, runCli, writeFiles, runSummary } from '../helpers.js';
import { closedPort, json, startRestServer, type RestServer } from '../support/rest-server.js';

const TOKEN = 'e2e-rest-token-3c4d5e6f7a8b';

/** 25 sensors served 10 per page by page number, behind a bearer token. */
function serveSensors(server: RestServer): void {
  server.handle((req, res) => {
    if (req.path === '/hook' || req.path === '/pd') return json(res, { ok: true });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401, { 'content-type': 'text/plain' }).end(`bad token ${req.headers.authorization}`);
    const page = Number(req.query.get('page'));
    const items = [];
    for (let i = (page - 1) * 10; i < Math.min(25, page * 10); i++) items.push({ id: `s${i}`, reading: { value: i * 10 }, host: `db-${i % 3}` });
    json(res, { data: { items } });
  });
}

const source = (base: string) =>
  `datasources:\n` +
  `  api:\n` +
  `    type: rest_api\n` +
  `    url: ${base}/sensors\n` +
  `    headers: { Authorization: "Bearer \${API_TOKEN}" }\n` +
  `    records_path: data.items\n` +
  `    pagination: { type: page, size: 10 }\n`;

const rule = (targets: string) =>
  `processing_rules:\n` + `  - { name: hot, threshold_field: reading.value, threshold_type: greater_than_or_equal, threshold_value: 200, export_targets: [${targets}] }\n`;

describe('processor CLI with REST datasources and targets (servers on 127.0.0.1)', function () {
  this.timeout(60_000);
  let dir: string;
  let server: RestServer;
  freshDirPerTest((d) => (dir = d));
  beforeEach(async () => {
    server = await startRestServer();
    serveSensors(server);
  });
  afterEach(() => server.stop());

  it('REST source -> rules -> REST target: the receiver gets the matches, with the token, and logs never show it', async () => {
    writeFiles(dir, {
      'c.yaml':
        source(server.base) +
        rule('hook') +
        `export_targets:\n  hook:\n    type: rest_api\n    url: ${server.base}/hook\n    headers: { Authorization: "Bearer \${API_TOKEN}" }\n    linger: 0s\n`,
    });
    const result = await runCli(['--config', 'c.yaml', '--log-level', 'debug'], { cwd: dir, env: { API_TOKEN: TOKEN } });
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    const pages = server.requests.filter((r) => r.path === '/sensors').map((r) => r.query.get('page'));
    expect(pages).to.deep.equal(['1', '2', '3', '4']);
    const hooks = server.requests.filter((r) => r.path === '/hook');
    expect(hooks.every((r) => r.method === 'POST' && r.headers.authorization === `Bearer ${TOKEN}` && /^[0-9a-f]{32}$/.test(String(r.headers['idempotency-key'])))).to.equal(true);
    const received = server.receivedRecords();
    expect(received.map((r) => r.id)).to.deep.equal(['s20', 's21', 's22', 's23', 's24']);
    expect(received[0]).to.deep.include({ reading: { value: 200 }, host: 'db-2', _rule: 'hot', _datasource: 'api' });
    expect(runSummary(result.stderr).rules.hot).to.deep.equal({ read: 25, matched: 5, invalid: 0, exported: 5, failed: 0, deduplicated: 0 });
    expect(result.stderr + result.stdout).to.not.include(TOKEN);
  });

  it('REST source -> file target', async () => {
    writeFiles(dir, { 'c.yaml': source(server.base) + rule('out') + `export_targets:\n  out: { type: file, path: "out/{rule}.ndjson" }\n` });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: { API_TOKEN: TOKEN } });
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    const records = parseNdjson(readFileSync(path.join(dir, 'out', 'hot.ndjson'), 'utf8'));
    expect(records.map((r) => r.id)).to.deep.equal(['s20', 's21', 's22', 's23', 's24']);
  });

  it('a REST target the server refuses (400) fails alone: the file target still gets every match, exit 1, the reason in the summary', async () => {
    server.handle((req, res) => {
      if (req.path === '/hook') return void res.writeHead(400, { 'content-type': 'application/json' }).end(`{"error":"schema mismatch","echo":"${req.headers.authorization}"}`);
      const page = Number(req.query.get('page'));
      json(res, { data: { items: page === 1 ? [{ id: 'a', reading: { value: 500 } }] : [] } });
    });
    writeFiles(dir, {
      'c.yaml':
        source(server.base) +
        rule('hook, out') +
        `export_targets:\n  out: { type: file, path: out.ndjson }\n  hook:\n    type: rest_api\n    url: ${server.base}/hook\n    headers: { Authorization: "Bearer \${API_TOKEN}" }\n`,
    });
    const result = await runCli(['--config', 'c.yaml', '--log-level', 'debug'], { cwd: dir, env: { API_TOKEN: TOKEN } });
    expect(result.code).to.equal(1);
    expect(parseNdjson(readFileSync(path.join(dir, 'out.ndjson'), 'utf8')).map((r) => r.id)).to.deep.equal(['a']);
    const summary = runSummary(result.stderr);
    expect(summary.rules.hot).to.deep.include({ matched: 1, exported: 1, failed: 1 });
    expect(summary.targets.hook.ok).to.equal(false);
    expect(summary.targets.hook.error).to.match(/export target "hook": POST http:\/\/127\.0\.0\.1:\d+\/hook answered HTTP 400: \{"error":"schema mismatch","echo":"\*\*\*"\}/);
    expect(server.requests.filter((r) => r.path === '/hook')).to.have.lengthOf(1);
    expect(result.stderr + result.stdout).to.not.include(TOKEN);
  });

  it('one alert the webhook refuses for good (400) while it takes the others: spooled as refused, not sent again every cycle, sent by --replay-dead-letters', async () => {
    let acceptAll = false;
    server.handle((req, res) => {
      if (req.path === '/sensors') return json(res, req.query.get('page') === '1' ? { data: { items: [{ id: 's1', reading: { value: 300 } }, { id: 'bad', reading: { value: 400 } }, { id: 's3', reading: { value: 500 } }] } } : { data: { items: [] } });
      const body = JSON.parse(req.body) as { id: string };
      if (body.id === 'bad' && !acceptAll) return void res.writeHead(400, { 'content-type': 'text/plain' }).end('field value must be a number');
      json(res, { ok: true });
    });
    writeFiles(dir, {
      'c.yaml':
        source(server.base).replace('    headers: { Authorization: "Bearer ${API_TOKEN}" }\n', '') +
        rule('hook') +
        `export_targets:\n  hook: {type: rest_api, url: "${server.base}/hook", batch_size: 1, include_metadata: false}\n`,
    });
    const hookCalls = () => server.requests.filter((r) => r.path === '/hook').map((r) => (JSON.parse(r.body) as { id: string }).id);
    const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(first.code).to.equal(1);
    expect(hookCalls().sort()).to.deep.equal(['bad', 's1', 's3']);
    expect(runSummary(first.stderr).spool).to.deep.equal({ hook: 1 });
    // the next runs: nothing new, and the refused alert is not sent again (the cycle succeeds)
    for (let run = 0; run < 2; run++) {
      const again = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      expect(again.code, again.stderr.slice(-2000)).to.equal(0);
      expect(runSummary(again.stderr).spool).to.deep.equal({ hook: 1 });
    }
    expect(hookCalls()).to.have.length(3);
    acceptAll = true;
    const replay = await runCli(['--config', 'c.yaml', '--replay-dead-letters', '--log-format', 'json'], { cwd: dir });
    expect(replay.code, replay.stderr.slice(-2000)).to.equal(0);
    expect(hookCalls().filter((id) => id === 'bad')).to.have.length(2);
    expect(runSummary(replay.stderr).spool).to.deep.equal({});
  });

  it('HTML instead of JSON fails the datasource with status, content type and first bytes; exit 1', async () => {
    server.handle((_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Sign in</title>'));
    writeFiles(dir, { 'c.yaml': source(server.base) + rule('out') + `export_targets:\n  out: { type: file, path: out.ndjson }\n` });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: { API_TOKEN: TOKEN } });
    expect(result.code).to.equal(1);
    expect(runSummary(result.stderr).datasources.api.error).to.match(
      /^reading page 1 of datasource "api": the response is not JSON .*: HTTP 200, text\/html, body starts "<!doctype html><title>Sign in<\/title>"$/,
    );
  });

  it("the README's Slack and PagerDuty examples send one payload per match, in the receivers' shapes", async () => {
    writeFiles(dir, {
      'c.yaml':
        source(server.base) +
        rule('slack, pagerduty') +
        `export_targets:\n` +
        `  slack:\n    type: rest_api\n    url: \${SLACK_WEBHOOK_URL}\n    batch_size: 1\n` +
        `    body_template: '{"text": ":rotating_light: *{rule}*: {id} reads {reading.value} at {_matched_at}"}'\n` +
        `  pagerduty:\n    type: rest_api\n    url: ${server.base}/pd\n    batch_size: 1\n    body_template: |\n` +
        `      {\n        "routing_key": "\${PAGERDUTY_ROUTING_KEY}",\n        "event_action": "trigger",\n        "dedup_key": "{rule}-{id}",\n` +
        `        "payload": {\n          "summary": "{rule}: {id} reads {reading.value}",\n          "source": "{host:-threshold-processor}",\n` +
        `          "severity": "critical",\n          "custom_details": {.}\n        }\n      }\n`,
    });
    const routingKey = 'R0UTING0KEY0000aaaabbbbccccdddd';
    const result = await runCli(['--config', 'c.yaml', '--log-level', 'debug'], {
      cwd: dir,
      env: { API_TOKEN: TOKEN, SLACK_WEBHOOK_URL: `${server.base}/hook`, PAGERDUTY_ROUTING_KEY: routingKey },
    });
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    const slack = server.requests.filter((r) => r.path === '/hook').map((r) => JSON.parse(r.body));
    expect(slack).to.have.lengthOf(5);
    expect(slack[0]).to.have.keys(['text']);
    expect(slack.map((b) => b.text.replace(/ at .*$/, ''))).to.have.members(['s20', 's21', 's22', 's23', 's24'].map((id, i) => `:rotating_light: *hot*: ${id} reads ${200 + i * 10}`));
    const pd = server.requests.filter((r) => r.path === '/pd').map((r) => JSON.parse(r.body));
    expect(pd).to.have.lengthOf(5);
    const event = pd.find((b) => b.dedup_key === 'hot-s21');
    const { custom_details: details, ...payload } = event.payload;
    expect({ ...event, payload }).to.deep.equal({
      routing_key: routingKey,
      event_action: 'trigger',
      dedup_key: 'hot-s21',
      payload: { summary: 'hot: s21 reads 210', source: 'db-0', severity: 'critical' },
    });
    expect(details).to.deep.include({ id: 's21', reading: { value: 210 }, host: 'db-0', _rule: 'hot', _datasource: 'api' });
    expect(result.stderr).to.not.include(routingKey);
  });

  it('examples/rest-alerts.yaml validates', async () => {
    const env = { SENSORS_TOKEN: 'a', SLACK_WEBHOOK_URL: 'https://hooks.slack.example/services/T/B/x', PAGERDUTY_ROUTING_KEY: 'r', ALERTS_TOKEN: 't' };
    const result = await runCli(['--validate', '--config', 'examples/rest-alerts.yaml'], { env });
    expect(result.code, result.stderr + result.stdout).to.equal(0);
  });

  it('--check reports each REST endpoint, ok or FAILED, and never prints the token', async () => {
    const port = await closedPort();
    writeFiles(dir, {
      'c.yaml':
        source(server.base) +
        rule('hook, gone') +
        `export_targets:\n` +
        `  hook: { type: rest_api, url: "${server.base}/hook", headers: { Authorization: "Bearer \${API_TOKEN}" } }\n` +
        `  gone: { type: rest_api, url: "http://127.0.0.1:${port}/hook?token=\${API_TOKEN}", headers: { Authorization: "Bearer \${API_TOKEN}" } }\n`,
    });
    const result = await runCli(['--check', '--config', 'c.yaml', '--log-level', 'debug'], { cwd: dir, env: { API_TOKEN: TOKEN } });
    expect(result.code).to.equal(1);
    const lines = result.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('api '))).to.match(/datasource\s+rest_api\s+ok\s+\d+ ms\s+GET http:\/\/127\.0\.0\.1:\d+\/sensors\?per_page=10&page=1: 10 records on the first page/);
    expect(lines.find((l) => l.startsWith('hook '))).to.match(/target\s+rest_api\s+ok\s+\d+ ms\s+reachable: HEAD http:\/\/127\.0\.0\.1:\d+\/hook answered HTTP 200/);
    expect(lines.find((l) => l.startsWith('gone '))).to.match(new RegExp(`target\\s+rest_api\\s+FAILED\\s+\\d+ ms\\s+checking export target "gone": .*127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
    expect(result.stderr + result.stdout).to.not.include(TOKEN);
    expect(server.requests.filter((r) => r.path === '/hook').map((r) => r.method)).to.deep.equal(['HEAD']);
  });
});
