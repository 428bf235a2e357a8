/**
 * XenStore, the tree every domain's configuration and device handshakes live in, through
 * libxenstore's connection to xenstored.
 *
 *   using xs = XenStore.open();
 *   xs.write('/local/domain/0/data/x', 'hello');
 *   using w = xs.watch('/local/domain/0/data');      // first event: the watch itself (XenStore's rule)
 *   for await (const path of w) { ... }
 *   await xs.transaction((tx) => tx.write(p, String(Number(tx.read(p)) + 1)));   // retried on conflict
 *
 * Values are at most 4096 bytes (XenStore's payload); a value another domain wrote is checked
 * against that before it is copied (native/xen/xenstore.c).
 */
import { InvalidConfigError, InvalidStateError } from '../errors';
import { callXen, XenCallError } from './errors';
import { EventQueue } from './event-queue';
import { checkDomid } from './domid';
import { requireXenLibraries } from './libraries';
import { nativeXenHandles, type NativeFdWatch, type NativeXenStore } from './native-handles';

export const XENSTORE_PAYLOAD_MAX = 4096;

export interface XenStorePermission {
  domid: number;
  read: boolean;
  write: boolean;
}

/** The calls a transaction body makes: the same as XenStore's, inside the transaction. */
export interface XenStoreOps {
  read(path: string): string;
  readBuffer(path: string): Buffer;
  write(path: string, value: string | Buffer): void;
  mkdir(path: string): void;
  rm(path: string): void;
  ls(path: string): string[];
  getPermissions(path: string): XenStorePermission[];
  setPermissions(path: string, perms: readonly XenStorePermission[]): void;
}

export interface TransactionOptions {
  /** Attempts before giving up on conflicts (default 16). */
  maxAttempts?: number;
  /** Called after each conflict, with the attempt number that conflicted (1-based). */
  onConflict?: (attempt: number) => void;
}

/** A XenStore node that does not exist. */
export class XenStoreNoEntryError extends XenCallError {
  constructor(
    readonly path: string,
    call: string,
  ) {
    super(call, 2, `${call}: no XenStore node ${path}`);
  }
}

/** Transactions that kept conflicting with other writers. */
export class XenStoreConflictError extends XenCallError {
  constructor(readonly attempts: number) {
    super('xs_transaction_end', 11, `the XenStore transaction conflicted ${attempts} times (maxAttempts): another writer keeps changing what it reads`);
  }
}

function checkPath(path: string): string {
  if (typeof path !== 'string' || path.length === 0 || path.length > 3072 || path.includes('\0') || (!path.startsWith('/') && !/^[\w@]/.test(path))) {
    throw new InvalidConfigError('path', path, 'a XenStore path: absolute (/local/…) or relative to this domain, 1..3072 characters, no NUL');
  }
  return path;
}

function ops(h: () => NativeXenStore, tx: number): XenStoreOps {
  const wrap = <T>(call: string, path: string, fn: () => T): T => {
    checkPath(path);
    try {
      return callXen(fn);
    } catch (err) {
      if (err instanceof XenCallError && err.errno === 2) throw new XenStoreNoEntryError(path, call);
      throw err;
    }
  };
  return {
    read: (p) => wrap('xs_read', p, () => h().read(tx, p).toString('utf8')),
    readBuffer: (p) => wrap('xs_read', p, () => h().read(tx, p)),
    write: (p, v) => {
      const data = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      if (data.length > XENSTORE_PAYLOAD_MAX) throw new InvalidConfigError('value', `${data.length} bytes`, `at most ${XENSTORE_PAYLOAD_MAX} bytes`);
      wrap('xs_write', p, () => h().write(tx, p, data));
    },
    mkdir: (p) => wrap('xs_mkdir', p, () => h().mkdir(tx, p)),
    rm: (p) => wrap('xs_rm', p, () => h().rm(tx, p)),
    ls: (p) => wrap('xs_directory', p, () => h().ls(tx, p)),
    getPermissions: (p) =>
      wrap('xs_get_permissions', p, () => h().getPerms(tx, p)).map((x) => ({ domid: x.domid, read: (x.perms & 1) !== 0, write: (x.perms & 2) !== 0 })),
    setPermissions: (p, perms) => {
      if (perms.length === 0) throw new InvalidConfigError('perms', perms, 'at least one entry (the first is the owner)');
      const raw = perms.map((x) => ({ domid: checkDomid('perms[].domid', x.domid), perms: (x.read ? 1 : 0) | (x.write ? 2 : 0) }));
      wrap('xs_set_permissions', p, () => h().setPerms(tx, p, raw));
    },
  };
}

/** One watch: the paths that changed at or under its path, as an async iterator. */
export class XenStoreWatch implements AsyncIterable<string>, Disposable {
  readonly events: EventQueue<string>;
  constructor(
    readonly path: string,
    readonly token: string,
    private readonly remove: (w: XenStoreWatch) => void,
  ) {
    this.events = new EventQueue<string>(() => this.remove(this));
  }
  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.events;
  }
  close(): void {
    this.remove(this);
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

let tokens = 0;

export class XenStore implements XenStoreOps, Disposable {
  private handle: NativeXenStore | undefined;
  private fdWatch: NativeFdWatch | undefined;
  private readonly watches = new Map<string, XenStoreWatch>();
  private readonly top: XenStoreOps;

  private constructor(handle: NativeXenStore) {
    this.handle = handle;
    this.top = ops(() => this.live(), 0);
  }

  /** Connects to xenstored (dom0, or any domain with /dev/xen/xenbus). */
  static open(): XenStore {
    requireXenLibraries(['libxenstore']);
    const { XenStoreHandle } = nativeXenHandles();
    return new XenStore(callXen(() => new XenStoreHandle()));
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  read(path: string): string {
    return this.top.read(path);
  }
  readBuffer(path: string): Buffer {
    return this.top.readBuffer(path);
  }
  write(path: string, value: string | Buffer): void {
    this.top.write(path, value);
  }
  mkdir(path: string): void {
    this.top.mkdir(path);
  }
  rm(path: string): void {
    this.top.rm(path);
  }
  ls(path: string): string[] {
    return this.top.ls(path);
  }
  getPermissions(path: string): XenStorePermission[] {
    return this.top.getPermissions(path);
  }
  setPermissions(path: string, perms: readonly XenStorePermission[]): void {
    this.top.setPermissions(path, perms);
  }

  /**
   * Runs `body` in a transaction and commits it; when another writer changed what it touched
   * (EAGAIN at commit), runs it again, up to maxAttempts. A body that throws aborts it.
   */
  async transaction<T>(body: (tx: XenStoreOps) => T | Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    const maxAttempts = opts.maxAttempts ?? 16;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new InvalidConfigError('maxAttempts', maxAttempts, 'an integer >= 1');
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const tx = callXen(() => this.live().txStart());
      let value: T;
      try {
        value = await body(ops(() => this.live(), tx));
      } catch (err) {
        if (this.handle) callXen(() => this.handle!.txEnd(tx, true));
        throw err;
      }
      try {
        callXen(() => this.live().txEnd(tx, false));
        return value;
      } catch (err) {
        if (!(err instanceof XenCallError && err.errno === 11)) throw err;
        opts.onConflict?.(attempt);
      }
    }
    throw new XenStoreConflictError(maxAttempts);
  }

  /** Watches `path` and everything under it. XenStore fires once right away, then on each change. */
  watch(path: string): XenStoreWatch {
    checkPath(path);
    const h = this.live();
    const token = `bulkhead-${process.pid}-${++tokens}`;
    const w = new XenStoreWatch(path, token, (x) => this.unwatch(x));
    callXen(() => h.watch(path, token));
    this.watches.set(token, w);
    if (!this.fdWatch) {
      const { FdWatch } = nativeXenHandles();
      this.fdWatch = new FdWatch(h.fd(), () => this.drain());
    }
    return w;
  }

  close(): void {
    const h = this.handle;
    if (!h) return;
    for (const w of [...this.watches.values()]) this.unwatch(w);
    this.fdWatch?.close();
    this.fdWatch = undefined;
    this.handle = undefined;
    h.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private unwatch(w: XenStoreWatch): void {
    if (!this.watches.delete(w.token)) return;
    w.events.end();
    try {
      this.handle?.unwatch(w.path, w.token);
    } catch {
      // xenstored gone or the node's watch already dropped: nothing left to release
    }
    if (this.watches.size === 0 && this.fdWatch) {
      this.fdWatch.close();
      this.fdWatch = undefined;
    }
  }

  private drain(): void {
    const h = this.handle;
    if (!h) return;
    for (;;) {
      let ev: { path: string; token: string } | null;
      try {
        ev = h.nextEvent();
      } catch (err) {
        for (const w of this.watches.values()) w.events.fail(err as Error);
        return;
      }
      if (!ev) return;
      this.watches.get(ev.token)?.events.push(ev.path);
    }
  }

  private live(): NativeXenStore {
    if (!this.handle) throw new InvalidStateError('use XenStore', 'closed', ['open']);
    return this.handle;
  }
}
