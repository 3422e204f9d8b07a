import { expect } from 'chai';
import { runController } from '../../src/cli/shutdown.js';

describe('the run controller', () => {
  it('takes one abort listener per in-flight operation of dozens of targets without a leak warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { signal } = runController();
      const listeners = Array.from({ length: 200 }, () => () => {});
      for (const l of listeners) signal.addEventListener('abort', l);
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).not.to.include('MaxListenersExceededWarning');
      for (const l of listeners) signal.removeEventListener('abort', l);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('still warns of a leak past a thousand listeners', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { signal } = runController();
      for (let i = 0; i < 1001; i++) signal.addEventListener('abort', () => {});
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).to.include('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
