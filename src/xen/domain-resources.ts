/**
 * Changing a running domain's memory and vCPUs, as `xl mem-set` and `xl vcpu-set` do, without libxl.
 *
 *   await setDomainMemory(3, 96);   // Xen's limit becomes 96 MiB + 1 MiB slack, memory/target 98304 KiB
 *   await setDomainVcpus(3, 1);     // cpu/0/availability online, cpu/1.. offline
 *
 * Both only ask: the guest's balloon driver (CONFIG_XEN_BALLOON) moves towards memory/target and its
 * vCPU hotplug watcher (CONFIG_HOTPLUG_CPU) onlines or offlines CPUs. A guest without them keeps what
 * it has; Xen's limit (maxmem) still applies to it, and Xen refuses it new pages beyond.
 */
import { InvalidConfigError } from '../errors';
import { checkDomid, DOMID_MAX } from './domid';
import { domainInfo, unwrap } from './domain';
import { XenCallError } from './errors';
import { xenHostInfo } from './host';
import { requireXenLibraries } from './libraries';
import { loadNativeXen } from './native';
import { XenStore, XenStoreNoEntryError, type XenStoreOps } from './xenstore';

/** The smallest memory target we set (the same floor as createPvDomain's memoryMiB). */
export const DOMAIN_MIN_MEMORY_MIB = 16;
/** Added to the target for Xen's limit, as libxl does (LIBXL_MAXMEM_CONSTANT) and our build does. */
export const MAXMEM_SLACK_KIB = 1024;

function checkDomU(domid: number): void {
  checkDomid('domid', domid);
  if (domid === 0) throw new InvalidConfigError('domid', domid, `a domU id, 1 to ${DOMID_MAX}: domain 0 is dom0, the domain this runs in, and is not resized here`);
}

/** A KiB count written by a toolstack: decimal digits only, bounded, a safe integer. */
function parseKiB(path: string, raw: string): number {
  if (raw.length > 15 || !/^[0-9]+$/.test(raw)) throw new XenCallError('xs_read', 71, `${path} holds ${JSON.stringify(raw.slice(0, 40))}, not a KiB count`);
  return Number(raw);
}

function readOptional(tx: XenStoreOps, path: string): string | undefined {
  try {
    return tx.read(path);
  } catch (err) {
    if (err instanceof XenStoreNoEntryError) return undefined;
    throw err;
  }
}

/** The domain's XenStore home must exist: keys written elsewhere would not be the guest's to read. */
function requireHome(tx: XenStoreOps, domid: number): string {
  const home = `/local/domain/${domid}`;
  try {
    tx.ls(home);
  } catch (err) {
    if (err instanceof XenStoreNoEntryError) throw new XenCallError('xs_directory', 2, `domain ${domid} has no XenStore home ${home} (was it introduced to xenstored?)`);
    throw err;
  }
  return home;
}

function setMaxMem(domid: number, kib: number, what: string): void {
  unwrap(loadNativeXen().xenDomainSetMaxMem(domid, kib), domid, what);
}

/**
 * Sets domain `domid`'s memory to `memoryMiB`: Xen's limit (xc_domain_setmaxmem) to the target plus
 * 1 MiB slack, and /local/domain/N/memory/target (KiB) for the guest's balloon driver, in one XenStore
 * transaction. Like libxl, a target above memory/static-max (what the guest was booted with) is
 * refused, and so is one beyond what it holds plus what Xen has free.
 *
 * Throws InvalidConfigError (a bad domid, domain 0, memoryMiB not an integer or out of range, with
 * the range allowed), XenNoSuchDomainError, or XenCallError.
 */
export async function setDomainMemory(domid: number, memoryMiB: number): Promise<void> {
  checkDomU(domid);
  if (!Number.isInteger(memoryMiB) || memoryMiB < DOMAIN_MIN_MEMORY_MIB) {
    throw new InvalidConfigError('memoryMiB', memoryMiB, `an integer number of MiB, at least ${DOMAIN_MIN_MEMORY_MIB}`);
  }
  requireXenLibraries(['libxentoollog', 'libxenctrl', 'libxenstore']);
  const before = domainInfo(domid);
  const freeKiB = xenHostInfo().freeMemoryMiB * 1024;
  const targetKiB = memoryMiB * 1024;
  let limitSet = false;
  using xs = XenStore.open();
  try {
    await xs.transaction((tx) => {
      const home = requireHome(tx, domid);
      const raw = readOptional(tx, `${home}/memory/static-max`);
      const staticMaxKiB = raw === undefined ? undefined : parseKiB(`${home}/memory/static-max`, raw);
      const fitKiB = before.memoryKiB + freeKiB;
      const maxKiB = Math.min(fitKiB, staticMaxKiB ?? Infinity);
      if (targetKiB > maxKiB) {
        const why = staticMaxKiB !== undefined && staticMaxKiB <= fitKiB ? `its memory/static-max, ${staticMaxKiB} KiB` : `what it holds plus what Xen has free, ${fitKiB} KiB`;
        throw new InvalidConfigError('memoryMiB', memoryMiB, `an integer from ${DOMAIN_MIN_MEMORY_MIB} to ${Math.floor(maxKiB / 1024)} for domain ${domid} (${why})`);
      }
      // Xen's limit first (libxl's order): raising it lets the balloon grow; lowering it stops new allocations.
      setMaxMem(domid, targetKiB + MAXMEM_SLACK_KIB, 'setDomainMemory');
      limitSet = true;
      tx.write(`${home}/memory/target`, String(targetKiB));
    });
  } catch (err) {
    // The target was not written: put Xen's limit back (the domain may be gone; that error is not the one to report).
    if (limitSet) {
      try {
        setMaxMem(domid, before.maxMemoryKiB, 'setDomainMemory');
      } catch {
        // reported below
      }
    }
    throw err;
  }
}

/**
 * Sets how many of domain `domid`'s vCPUs are online: /local/domain/N/cpu/I/availability is "online"
 * for I < vcpus and "offline" up to its max vCPUs (fixed at creation), in one XenStore transaction.
 *
 * Throws InvalidConfigError (a bad domid, domain 0, vcpus not an integer from 1 to the domain's max),
 * XenNoSuchDomainError, or XenCallError.
 */
export async function setDomainVcpus(domid: number, vcpus: number): Promise<void> {
  checkDomU(domid);
  if (!Number.isInteger(vcpus) || vcpus < 1) throw new InvalidConfigError('vcpus', vcpus, 'an integer >= 1, at most the domain\'s max vCPUs');
  requireXenLibraries(['libxentoollog', 'libxenctrl', 'libxenstore']);
  const { maxVcpus } = domainInfo(domid);
  if (vcpus > maxVcpus) throw new InvalidConfigError('vcpus', vcpus, `an integer from 1 to ${maxVcpus} (domain ${domid}'s max vCPUs, fixed when it was created)`);
  using xs = XenStore.open();
  await xs.transaction((tx) => {
    const home = requireHome(tx, domid);
    for (let i = 0; i < maxVcpus; i++) tx.write(`${home}/cpu/${i}/availability`, i < vcpus ? 'online' : 'offline');
  });
}
