import { getEventListeners } from 'node:events';
import { expect } from 'chai';
import { linkedSignal } from '../../src/util/linked-signal.js';

describe('linkedSignal (src/util/linked-signal.ts)', () => {
  it('aborts when any source aborts, with its reason', () => {
    const service = new AbortController();
    const part = new AbortController();
    const linked = linkedSignal(service.signal, part.signal);
    expect(linked.signal.aborted).to.equal(false);
    part.abort(new Error('discarded'));
    expect(linked.signal.aborted).to.equal(true);
    expect((linked.signal.reason as Error).message).to.equal('discarded');
    expect(getEventListeners(service.signal, 'abort'), 'unlinked from the other source once aborted').to.have.lengthOf(0);
  });

  it('is aborted at once when a source already is', () => {
    const done = new AbortController();
    done.abort('stop');
    expect(linkedSignal(new AbortController().signal, done.signal).signal.reason).to.equal('stop');
  });

  it('leaves no listener on a long-lived source once released, however many operations it served', () => {
    const service = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const linked = linkedSignal(service.signal, new AbortController().signal);
      linked.signal.addEventListener('abort', () => {});
      linked.release();
    }
    expect(getEventListeners(service.signal, 'abort')).to.have.lengthOf(0);
    const after = linkedSignal(service.signal);
    after.release();
    service.abort();
    expect(after.signal.aborted, 'released: no longer follows').to.equal(false);
  });
});
