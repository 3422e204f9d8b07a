import { expect } from 'chai';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, startCli, writeFiles } from '../helpers.js';
import { json, startRestServer, type RestServer } from '../support/rest-server.js';

const HEADER = 'id,created_at,v\n';
const row = (id: number, at: string, v: number) => `${id},${at},${v}\n`;

function summaries(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter((l) => l.includes('"run summary"'))
    .map((l) => JSON.parse(l));
}

describe('service recovery with an HTTP target (built CLI, server on 127.0.0.1)', function () {
  this.timeout(60_000);
  let dir: string;
  let server: RestServer;
  freshDirPerTest((d) => (dir = d));
  afterEach(() => server?.stop());

  it('a REST target that fails for two cycles and then recovers gets every match, in order, and the spool ends empty', async () => {
    let failing = true;
    server = await startRestServer((_req, res) => (failing ? json(res, { error: 'maintenance' }, 503) : json(res, { ok: true })));
    // In order needs one request at a time: with max_in_flight above 1 writes may finish in another order (docs/delivery.md).
    writeFiles(dir, {
      'c.yaml':
        'datasources:\n  feed:\n    type: csv\n    path: feed.csv\n    incremental: {field: created_at}\n' +
        'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: hook}\n' +
        `export_targets:\n  hook: {type: rest_api, url: "${server.base}/alerts", include_metadata: false, linger: 0s, max_in_flight: 1, retry: {max_attempts: 2, initial_backoff: 10ms}}\n`,
      'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) + row(2, '2026-01-01T00:00:30Z', 5),
    });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.3', '--log-format', 'json'], { cwd: dir });
    let stderr = '';
    cli.child.stderr!.on('data', (d) => (stderr += d));
    const cycles = (n: number) => cli.waitForStderr(new RegExp(`("msg":"run summary"[\\s\\S]*){${n}}`), 20_000);

    // Cycle 1 fails: match 1 is spooled.
    await cycles(1);
    appendFileSync(path.join(dir, 'feed.csv'), row(3, '2026-01-01T00:01:00Z', 60) + row(4, '2026-01-01T00:02:00Z', 70));
    // Cycle 2 (or 3, if the append landed after it began) fails too: the spool grows, oldest first.
    await cycles(3);
    const failed = summaries(stderr);
    expect(failed.slice(0, 2).map((s) => s.spool.hook)).to.satisfy((sizes: number[]) => sizes.every((n) => n >= 1));
    expect(failed.at(-1)!.spool).to.deep.equal({ hook: 3 });
    const attemptsWhileDown = server.requests.length;
    expect(attemptsWhileDown).to.be.at.least(4);

    failing = false;
    appendFileSync(path.join(dir, 'feed.csv'), row(5, '2026-01-01T00:03:00Z', 80));
    // Wait for a cycle that ends with the spool empty, then one more: nothing is sent twice.
    const recovered = async () => {
      for (let n = summaries(stderr).length + 1; ; n++) {
        await cycles(n);
        if (Object.keys(summaries(stderr).at(-1)!.spool).length === 0 && summaries(stderr).at(-1)!.rules.hot?.exported >= 1) return n;
      }
    };
    await cycles((await recovered()) + 1);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);

    // Accepted requests only: every match once, in the order it was matched (the spool first, then new data).
    const delivered = server.requests
      .slice(attemptsWhileDown)
      .filter((r) => r.body !== '')
      .flatMap((r) => [JSON.parse(r.body)].flat() as { id: string }[])
      .map((r) => String(r.id));
    expect(delivered).to.deep.equal(['1', '3', '4', '5']);
    expect(summaries(result.stderr).at(-1)!.spool).to.deep.equal({});
  });
});

