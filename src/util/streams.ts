/**
 * When a process's exit is known, the last bytes of its output may still sit in a Readable's
 * buffer: a 'data' listener attached a moment ago is only switched on in a later tick, after the
 * promise continuation of `await p.wait()`. `readersCaughtUp` waits until each stream's reader
 * has had what was pushed: the stream ended or was destroyed, or nobody is reading it (paused or
 * never consumed, so waiting for it could last forever).
 */
import type { Readable } from 'node:stream';

export function readersCaughtUp(streams: readonly Readable[]): Promise<void> {
  // setImmediate runs after the nextTick that resumes a freshly attached listener.
  return new Promise<void>((resolve) => setImmediate(resolve)).then(() => Promise.all(streams.map(caughtUp)).then(() => undefined));
}

function caughtUp(r: Readable): Promise<void> {
  if (r.readableEnded || r.destroyed || r.readableFlowing !== true) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      r.off('end', done).off('close', done).off('pause', done);
      resolve();
    };
    r.on('end', done).on('close', done).on('pause', done);
  });
}
