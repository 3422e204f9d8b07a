import { expect } from 'chai';
import { sleep, withRetry } from '../../src/delivery/retry.js';
import { memoryLogger } from '../helpers.js';

const policy = { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 };

describe('withRetry (src/delivery/retry.ts)', () => {
  it('a deadline already passed is TIMEOUT, not a cancel, and nothing is tried', async () => {
    let tried = 0;
    const signal = AbortSignal.timeout(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const err = await withRetry(async () => void tried++, { policy, signal, log: memoryLogger().log, what: 'aborting the upload of s3://b/k' }).then(
      () => undefined,
      (e: { code?: string; message?: string }) => e,
    );
    expect(err).to.include({ code: 'TIMEOUT', message: 'aborting the upload of s3://b/k: not finished before its deadline' });
    expect(tried).to.equal(0);
  });

  it('a deadline passing during the wait between attempts is TIMEOUT too', async () => {
    const signal = AbortSignal.timeout(30);
    const failing = async () => {
      throw Object.assign(new Error('reset'), { code: 'ECONNRESET', retryable: true });
    };
    const err = await withRetry(failing, { policy: { maxAttempts: 3, initialBackoffMs: 400, maxBackoffMs: 400 }, signal, log: memoryLogger().log, what: 'aborting the upload of s3://b/k' }).then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    expect(err).to.include({ code: 'TIMEOUT' });
  });

  it('a signal aborted by a cancel is CANCELLED', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await withRetry(async () => 1, { policy, signal: controller.signal, log: memoryLogger().log, what: 'writing' }).then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    expect(err).to.include({ code: 'CANCELLED' });
  });
});

describe('sleep with a delay past what a Node timer holds (about 24.8 days)', () => {
  it('waits (it does not fire after 1 ms as a bare setTimeout would), and a cancel still ends it', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      let settled = '';
      const waiting = sleep(40 * 24 * 3600 * 1000, controller.signal, 'backing off').then(
        () => (settled = 'resolved'),
        (err: Error) => (settled = err.name),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(settled).to.equal('');
      controller.abort();
      await waiting;
      expect(settled).to.equal('CancelledError');
      expect(warnings).to.not.include('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
