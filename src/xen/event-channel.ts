/**
 * Event channels: Xen's doorbells between domains (or within one), through libxenevtchn.
 *
 *   using ch = EventChannel.open();
 *   const a = ch.bindUnbound(0);              // a port domain 0 (here: ourselves) may connect to
 *   const b = ch.bindInterdomain(0, a);       // ...and its other end
 *   ch.notify(b);
 *   for await (const port of ch.events()) { ... port === a ... }
 *
 * A delivered port is unmasked again before it is yielded, so the next notify is seen too. Xen
 * raises a port once when bindInterdomain() connects it (an event sent before the bind is not lost).
 * close() unbinds every port this handle bound.
 */
import { InvalidConfigError, InvalidStateError } from '../errors';
import { checkDomid } from './domid';
import { callXen, XenCallError, XenNoSuchDomainError } from './errors';
import { EventQueue } from './event-queue';
import { requireXenLibraries } from './libraries';
import { nativeXenHandles, type NativeEvtchn, type NativeFdWatch } from './native-handles';

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 0xffffffff) throw new InvalidConfigError('port', port, 'an event-channel port, an integer >= 1');
  return port;
}

export class EventChannel implements Disposable {
  private handle: NativeEvtchn | undefined;
  private readonly ports = new Set<number>();
  private fdWatch: NativeFdWatch | undefined;
  private queue: EventQueue<number> | undefined;

  private constructor(handle: NativeEvtchn) {
    this.handle = handle;
  }

  static open(): EventChannel {
    requireXenLibraries(['libxenevtchn']);
    const { EvtchnHandle } = nativeXenHandles();
    return new EventChannel(callXen(() => new EvtchnHandle()));
  }

  /** The ports bound through this handle. */
  get boundPorts(): number[] {
    return [...this.ports];
  }

  /** A new local port that `remoteDomid` may bind to (the first half of a channel). */
  bindUnbound(remoteDomid: number): number {
    checkDomid('remoteDomid', remoteDomid);
    const port = this.domainCall(remoteDomid, 'bindUnbound', () => this.live().bindUnbound(remoteDomid));
    this.ports.add(port);
    return port;
  }

  /** Connects to `remotePort`, an unbound port of `remoteDomid` offered to us; returns our end. */
  bindInterdomain(remoteDomid: number, remotePort: number): number {
    checkDomid('remoteDomid', remoteDomid);
    checkPort(remotePort);
    const port = this.domainCall(remoteDomid, 'bindInterdomain', () => this.live().bindInterdomain(remoteDomid, remotePort));
    this.ports.add(port);
    return port;
  }

  notify(port: number): void {
    this.own(port);
    callXen(() => this.live().notify(port));
  }

  unmask(port: number): void {
    this.own(port);
    callXen(() => this.live().unmask(port));
  }

  unbind(port: number): void {
    this.own(port);
    callXen(() => this.live().unbind(port));
    this.ports.delete(port);
  }

  /** The ports that fire, in order, until close() (or the loop leaves). One iterator per handle. */
  events(): AsyncIterableIterator<number> {
    const h = this.live();
    if (this.queue) throw new InvalidStateError('iterate events', 'already iterated', ['one iterator per EventChannel']);
    this.queue = new EventQueue<number>(() => this.stopEvents());
    const { FdWatch } = nativeXenHandles();
    this.fdWatch = new FdWatch(h.fd(), () => this.drain());
    return this.queue;
  }

  close(): void {
    const h = this.handle;
    if (!h) return;
    this.stopEvents();
    this.handle = undefined;
    this.ports.clear();
    h.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private stopEvents(): void {
    this.fdWatch?.close();
    this.fdWatch = undefined;
    this.queue?.end();
    this.queue = undefined;
  }

  private drain(): void {
    const h = this.handle;
    if (!h || !this.queue) return;
    for (;;) {
      let port: number;
      try {
        port = h.pending();
        if (port < 0) return;
        h.unmask(port);
      } catch (err) {
        this.queue.fail(err as Error);
        return;
      }
      this.queue.push(port);
    }
  }

  private domainCall<T>(domid: number, what: string, fn: () => T): T {
    try {
      return callXen(fn);
    } catch (err) {
      if (err instanceof XenCallError && err.errno === 3) throw new XenNoSuchDomainError(domid, `EventChannel.${what}`);
      throw err;
    }
  }

  private own(port: number): void {
    checkPort(port);
    if (!this.ports.has(port)) throw new InvalidConfigError('port', port, `a port bound through this EventChannel (${[...this.ports].join(', ') || 'none'})`);
  }

  private live(): NativeEvtchn {
    if (!this.handle) throw new InvalidStateError('use the EventChannel', 'closed', ['open']);
    return this.handle;
  }
}
