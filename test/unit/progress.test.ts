import { expect } from 'chai';
import { ProgressLine } from '../../src/cli/progress.js';
import { emptyRuleStats, type CycleReport } from '../../src/pipeline/stats.js';

function newReport(): CycleReport {
  return { runId: 'x', startedAt: '', durationMs: 0, rules: new Map([['high', emptyRuleStats()], ['low', emptyRuleStats()]]), datasources: new Map(), targets: new Map(), cancelled: false };
}

describe('progress line', () => {
  it('shows rows read, rows per second and matches per rule, read from the live counters', () => {
    let now = 1000;
    const writes: string[] = [];
    const line = new ProgressLine({ write: (s) => writes.push(s), columns: 120 }, 250, () => now);
    const report = newReport();
    line.start(report);
    report.datasources.set('a', { ok: true, records: 1_500_000 });
    report.datasources.set('b', { ok: true, records: 500_000 });
    report.rules.get('high')!.matched = 1234;
    now += 2000;
    line.draw();
    expect(writes.at(-1)).to.equal('\r\x1b[K2,000,000 rows read, 1,000,000 rows/s · matches: high 1,234, low 0');
    line.stop();
    expect(writes.at(-1)).to.equal('\r\x1b[K');
  });

  it('fits the terminal width and clears only a line it drew', () => {
    const writes: string[] = [];
    const line = new ProgressLine({ write: (s) => writes.push(s), columns: 30 });
    line.clear();
    expect(writes).to.deep.equal([]);
    line.start(newReport());
    line.draw();
    expect(writes[0]!.length).to.equal('\r\x1b[K'.length + 29);
    expect(writes[0]).to.match(/…$/);
    line.clear();
    line.clear();
    expect(writes.slice(1)).to.deep.equal(['\r\x1b[K']);
    line.stop();
  });

  it('redraws on a timer, never per row', async () => {
    const writes: string[] = [];
    const line = new ProgressLine({ write: (s) => writes.push(s) }, 20);
    line.start(newReport());
    await new Promise((r) => setTimeout(r, 110));
    line.stop();
    expect(writes.length).to.be.within(3, 7);
  });
});
