/**
 * Existing domains, by id: their info, pause/unpause/destroy, and a watch on their death.
 * (Building a new PV domain: createPvDomain, build-domain.ts.)
 *
 *   const info = domainInfo(3);             // XenNoSuchDomainError when no domain 3 exists
 *   pauseDomain(3); unpauseDomain(3);
 *   const end = await domainDeath(3);       // resolves when it shuts down or is destroyed
 *   destroyDomain(3);
 */
import { checkDomid } from './domid';
import { XenCallError, XenNoSuchDomainError, XenUnavailableError } from './errors';
import { domainInfo as toInfo, type XenDomainInfo } from './host';
import { requireXenLibraries } from './libraries';
import { loadNativeXen, type NativeXenResult } from './native';
import { XenStore } from './xenstore';

/** @internal A native result, or its typed error (ESRCH: XenNoSuchDomainError). */
export function unwrap<T extends object>(r: NativeXenResult<T>, domid: number, what: string): T {
  if (r.ok) return r;
  if (r.message.startsWith('xc_interface_open')) throw new XenUnavailableError([], `${what}: Xen's control interface cannot be opened (${r.message}): run this in dom0, as root`);
  if (r.errno === 3) throw new XenNoSuchDomainError(domid, what);
  throw new XenCallError(r.message.split('(')[0] ?? what, r.errno, `${what}(${domid}): ${r.message}`);
}

export function domainInfo(domid: number): XenDomainInfo {
  checkDomid('domid', domid);
  requireXenLibraries(['libxentoollog', 'libxenctrl']);
  return toInfo(unwrap(loadNativeXen().xenDomain(domid), domid, 'domainInfo').domain);
}

/** The domain's info, or undefined when it does not exist (any other failure throws). */
export function findDomain(domid: number): XenDomainInfo | undefined {
  try {
    return domainInfo(domid);
  } catch (err) {
    if (err instanceof XenNoSuchDomainError) return undefined;
    throw err;
  }
}

function op(name: 'pause' | 'unpause' | 'destroy', domid: number): void {
  checkDomid('domid', domid);
  if (domid === 0) throw new XenCallError(`xc_domain_${name}`, 1, `refusing to ${name} domain 0 (dom0, the domain this runs in)`);
  requireXenLibraries(['libxentoollog', 'libxenctrl']);
  unwrap(loadNativeXen().xenDomainOp(name, domid), domid, `${name}Domain`);
}

export function pauseDomain(domid: number): void {
  op('pause', domid);
}

export function unpauseDomain(domid: number): void {
  op('unpause', domid);
}

export function destroyDomain(domid: number): void {
  op('destroy', domid);
}

export interface DomainEnd {
  domid: number;
  /** 'destroyed' (gone from Xen's list), or the shutdown reason the domain gave. */
  reason: 'destroyed' | 'poweroff' | 'reboot' | 'suspend' | 'crash' | 'watchdog' | 'soft_reset' | `shutdown ${number}`;
}

const SHUTDOWN_REASONS = ['poweroff', 'reboot', 'suspend', 'crash', 'watchdog', 'soft_reset'] as const;

function ended(domid: number): DomainEnd | undefined {
  const d = findDomain(domid);
  if (!d || d.state === 'dying') return { domid, reason: 'destroyed' };
  if (d.state === 'shutdown') {
    const r = d.shutdownReason ?? 0;
    return { domid, reason: SHUTDOWN_REASONS[r] ?? `shutdown ${r}` };
  }
  return undefined;
}

/**
 * Resolves when domain `domid` shuts down or disappears, from XenStore's @releaseDomain watch
 * (fired by Xen for every domain that dies). Rejects with XenNoSuchDomainError when it does not
 * exist to begin with; `signal` stops waiting.
 */
export async function domainDeath(domid: number, opts: { signal?: AbortSignal } = {}): Promise<DomainEnd> {
  domainInfo(domid); // exists now, or a typed error
  using xs = XenStore.open();
  using watch = xs.watch('@releaseDomain');
  const onAbort = () => watch.close();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // The first event is the watch's own registration: checking on every event covers a death before it.
    for await (const _ of watch) {
      const end = ended(domid);
      if (end) return end;
    }
    const end = ended(domid);
    if (end) return end;
    throw opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('domainDeath: stopped');
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
