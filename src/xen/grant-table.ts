/**
 * Grant tables: memory shared between domains page by page, through libxengnttab.
 *
 *   using gt = GrantTable.open();
 *   const shared = gt.share(domid, 1);            // pages of ours, granted to domid: shared.refs
 *   shared.write(0, Buffer.from('hello'));
 *   const mapped = gt.map(0, shared.refs);        // another domain's grants (here: our own)
 *   mapped.read(0, 5);                            // copies, bounds-checked against the mapping
 *
 * A region is never handed out as raw memory: read() and write() copy, checked against its size,
 * so a released region cannot be touched by a stale Buffer. close() releases every region.
 */
import { InvalidConfigError, InvalidStateError } from '../errors';
import { checkDomid } from './domid';
import { callXen, XenCallError, XenGrantRefError, XenNoSuchDomainError } from './errors';
import { requireXenLibraries } from './libraries';
import { nativeXenHandles, type NativeGnt } from './native-handles';

export const XEN_PAGE_SIZE = 4096;
export const GRANT_MAX_PAGES = 1024;

export class GrantRegion implements Disposable {
  private released = false;
  constructor(
    private readonly gt: GrantTable,
    private readonly id: number,
    /** The domain on the other side. */
    readonly domid: number,
    /** The grant references, one per page. */
    readonly refs: readonly number[],
    readonly writable: boolean,
  ) {}

  /** @internal The native region id, for readers of structures inside it (console-ring.ts). */
  nativeId(): { gt: NativeGnt; id: number } {
    if (this.released) throw new InvalidStateError('access a grant region', 'released', ['active']);
    return { gt: this.gt.native(), id: this.id };
  }

  get size(): number {
    return this.refs.length * XEN_PAGE_SIZE;
  }

  get active(): boolean {
    return !this.released;
  }

  read(offset: number, length: number): Buffer {
    this.check(offset, length);
    return callXen(() => this.gt.native().read(this.id, offset, length));
  }

  write(offset: number, data: Buffer): void {
    this.check(offset, data.length);
    if (!this.writable) throw new InvalidStateError('write to a grant region', 'read-only', ['mapped or shared writable']);
    callXen(() => this.gt.native().write(this.id, offset, data));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.gt.forget(this);
    callXen(() => this.gt.native().release(this.id));
  }

  [Symbol.dispose](): void {
    this.release();
  }

  private check(offset: number, length: number): void {
    if (this.released) throw new InvalidStateError('access a grant region', 'released', ['active']);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0 || offset + length > this.size) {
      throw new InvalidConfigError('offset/length', `${offset}+${length}`, `a range inside the region's ${this.size} bytes`);
    }
  }
}

export class GrantTable implements Disposable {
  private handle: NativeGnt | undefined;
  private readonly live = new Set<GrantRegion>();

  private constructor(handle: NativeGnt) {
    this.handle = handle;
  }

  static open(): GrantTable {
    requireXenLibraries(['libxengnttab']);
    const { GntHandle } = nativeXenHandles();
    return new GrantTable(callXen(() => new GntHandle()));
  }

  /** The regions shared or mapped and not released yet. */
  get regions(): number {
    return this.live.size;
  }

  /** Grants `pages` fresh zeroed pages of ours to `domid`. */
  share(domid: number, pages: number, opts: { writable?: boolean } = {}): GrantRegion {
    checkDomid('domid', domid);
    if (!Number.isInteger(pages) || pages < 1 || pages > GRANT_MAX_PAGES) throw new InvalidConfigError('pages', pages, `an integer from 1 to ${GRANT_MAX_PAGES}`);
    const writable = opts.writable ?? true;
    let r: { id: number; refs: number[] };
    try {
      r = callXen(() => this.native().share(domid, pages, writable));
    } catch (err) {
      if (err instanceof XenCallError && err.errno === 3) throw new XenNoSuchDomainError(domid, 'GrantTable.share');
      throw err;
    }
    // Always writable on our side: "writable" is what the other domain may do.
    return this.track(new GrantRegion(this, r.id, domid, r.refs, true));
  }

  /** Maps grant references `refs` of `domid` as one region of refs.length pages. */
  map(domid: number, refs: readonly number[], opts: { writable?: boolean } = {}): GrantRegion {
    checkDomid('domid', domid);
    if (!Array.isArray(refs) || refs.length < 1 || refs.length > GRANT_MAX_PAGES) {
      throw new InvalidConfigError('refs', refs, `1 to ${GRANT_MAX_PAGES} grant references`);
    }
    for (const ref of refs) if (!Number.isInteger(ref) || ref < 0 || ref > 0xffffffff) throw new InvalidConfigError('refs[]', ref, 'grant references, integers >= 0');
    const writable = opts.writable ?? false;
    let id: number;
    try {
      id = callXen(() => this.native().map(domid, [...refs], writable));
    } catch (err) {
      if (err instanceof XenCallError && err.errno === 3) throw new XenNoSuchDomainError(domid, 'GrantTable.map');
      if (err instanceof XenCallError) throw new XenGrantRefError(domid, refs, err.errno, err.message);
      throw err;
    }
    return this.track(new GrantRegion(this, id, domid, [...refs], writable));
  }

  close(): void {
    const h = this.handle;
    if (!h) return;
    for (const r of [...this.live]) {
      try {
        r.release();
      } catch {
        // close() below releases whatever the native side still holds
      }
    }
    this.handle = undefined;
    h.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal */
  native(): NativeGnt {
    if (!this.handle) throw new InvalidStateError('use the GrantTable', 'closed', ['open']);
    return this.handle;
  }

  /** @internal */
  forget(r: GrantRegion): void {
    this.live.delete(r);
  }

  private track(r: GrantRegion): GrantRegion {
    this.live.add(r);
    return r;
  }
}
