/**
 * A PV console ring (xen/io/console.h) in a grant region, from the backend's side: what the guest
 * writes becomes a Readable stream, what we write reaches its input ring. The ring's indices belong
 * to the guest; the native reader (native/xen/console_ring.c, fuzzed) checks them before copying.
 *
 *   const ring = new ConsoleRing(region);
 *   const stream = ring.stream(channel, port);    // reads on every event on `port`
 *   stream.on('data', (chunk) => ...);
 */
import { Readable } from 'node:stream';
import { callXen } from './errors';
import type { EventChannel } from './event-channel';
import type { GrantRegion } from './grant-table';

const OUT_RING = 2048;

export class ConsoleRing {
  constructor(private readonly region: GrantRegion) {}

  /** Everything the guest has written and we have not read yet (consumes it). */
  read(): Buffer {
    const { gt, id } = this.region.nativeId();
    return callXen(() => gt.consoleRead(id, OUT_RING));
  }

  /** Queues `data` for the guest; returns how many bytes fit (the input ring holds 1024). */
  write(data: Buffer | string): number {
    const { gt, id } = this.region.nativeId();
    return callXen(() => gt.consoleWrite(id, typeof data === 'string' ? Buffer.from(data) : data));
  }

  /**
   * The guest's output as a stream: read once now and on every event on `port` of `channel`
   * (the console's event channel; this takes the channel's one event iterator). Ends when the
   * channel closes; a ring with impossible indices destroys the stream with the error.
   */
  stream(channel: EventChannel, port: number): Readable {
    const events = channel.events();
    const out = new Readable({ read() {} });
    const pump = () => {
      for (;;) {
        const chunk = this.read();
        if (chunk.length === 0) return;
        out.push(chunk);
      }
    };
    void (async () => {
      try {
        pump();
        for await (const p of events) if (p === port) pump();
        out.push(null);
      } catch (err) {
        out.destroy(err as Error);
      }
    })();
    return out;
  }
}
