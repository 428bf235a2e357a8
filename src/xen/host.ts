/**
 * The Xen host as dom0 sees it: Xen's version, its physical resources and free memory, and the
 * domains with their state. Each call opens libxenctrl and closes it again (nothing to dispose).
 */
import { XenCallError, XenUnavailableError } from './errors';
import { requireXenLibraries } from './libraries';
import { loadNativeXen, type NativeXenDomain } from './native';

const PAGE = 4096;
const MIB = 1024 * 1024;

export type XenDomainState = 'running' | 'blocked' | 'paused' | 'shutdown' | 'dying' | 'idle';

export interface XenDomainInfo {
  domid: number;
  state: XenDomainState;
  /** Set when state is 'shutdown': Xen's shutdown code (0 poweroff, 1 reboot, 2 suspend, 3 crash, 4 watchdog, 5 soft reset). */
  shutdownReason?: number;
  hvm: boolean;
  memoryMiB: number;
  maxMemoryMiB: number;
  /** The pages it holds and Xen's limit on them (xc_domain_setmaxmem), in KiB. */
  memoryKiB: number;
  maxMemoryKiB: number;
  onlineVcpus: number;
  /** The vCPUs it was created with (max_vcpu_id + 1): the most that can be online. */
  maxVcpus: number;
  cpuTimeNs: number;
  /** The domain's 16-byte handle as a UUID. */
  uuid: string;
}

export interface XenHostInfo {
  /** e.g. "4.17.7" */
  version: string;
  major: number;
  minor: number;
  cpus: number;
  cpuMhz: number;
  nodes: number;
  totalMemoryMiB: number;
  freeMemoryMiB: number;
  domains: XenDomainInfo[];
}

/** Throws XenUnavailableError (libraries missing, or not dom0) or XenCallError. */
export function xenHostInfo(): XenHostInfo {
  requireXenLibraries(['libxentoollog', 'libxenctrl']);
  const r = loadNativeXen().xenHostInfo();
  if (!r.ok) {
    if (r.message.startsWith('xc_interface_open')) {
      throw new XenUnavailableError([], `Xen's control interface cannot be opened (${r.message}): run this in dom0, as root`);
    }
    throw new XenCallError(r.message.split(':')[0] ?? 'libxenctrl', r.errno, r.message);
  }
  return {
    version: `${r.version.major}.${r.version.minor}${r.version.extra}`,
    major: r.version.major,
    minor: r.version.minor,
    cpus: r.physinfo.nrCpus,
    cpuMhz: Math.round(r.physinfo.cpuKhz / 1000),
    nodes: r.physinfo.nrNodes,
    totalMemoryMiB: Math.floor((r.physinfo.totalPages * PAGE) / MIB),
    freeMemoryMiB: Math.floor((r.physinfo.freePages * PAGE) / MIB),
    domains: r.domains.map(domainInfo),
  };
}

/** Xen's XEN_DOMINF_* flags as one state (the same precedence `xl list` shows). */
export function domainState(flags: number): { state: XenDomainState; shutdownReason?: number } {
  if (flags & 1) return { state: 'dying' };
  if (flags & 4) return { state: 'shutdown', shutdownReason: (flags >>> 16) & 0xff };
  if (flags & 8) return { state: 'paused' };
  if (flags & 32) return { state: 'running' };
  if (flags & 16) return { state: 'blocked' };
  return { state: 'idle' };
}

/** @internal */
export function domainInfo(d: NativeXenDomain): XenDomainInfo {
  const h = d.handle.toString('hex');
  return {
    domid: d.domid,
    ...domainState(d.flags),
    hvm: (d.flags & 2) !== 0,
    memoryMiB: Math.floor((d.totPages * PAGE) / MIB),
    maxMemoryMiB: Math.floor((d.maxPages * PAGE) / MIB),
    memoryKiB: d.totPages * (PAGE / 1024),
    maxMemoryKiB: d.maxPages * (PAGE / 1024),
    onlineVcpus: d.onlineVcpus,
    maxVcpus: d.maxVcpuId + 1,
    cpuTimeNs: d.cpuTimeNs,
    uuid: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`,
  };
}
