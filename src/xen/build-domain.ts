/**
 * Our own PV domain build, without xl or libxl: libxenctrl creates the domain, libxenguest's xc_dom_*
 * builder loads the kernel and initrd (native/xen/domain_build.c), we write the XenStore keys a PV
 * guest expects, introduce it to xenstored, and attach its PV console: grant ref 0 (seeded by the
 * builder for dom0) mapped through GrantTable, read by ConsoleRing, with its event channel bound here.
 *
 *   await using d = createPvDomain({ kernel, initrd, cmdline: 'console=hvc0', memoryMiB: 128, vcpus: 1, name: 'z1' });
 *   d.console.on('data', (c) => ...);   // the guest's hvc0
 *   const end = d.death();               // { reason: 'poweroff' } etc.
 *   d.unpause();                         // built paused: subscribe first
 *   d.destroy();                         // also on dispose; unmaps, unbinds, destroys, removes its keys
 *
 *   await using d = await createPvDomainAsync(cfg, { signal });   // the libxenguest build off the JS thread
 *   await d.setMemory(96); await d.setVcpus(1);                     // xl mem-set / xl vcpu-set
 *
 * A build that fails at any step leaves no domain, no XenStore keys and no handle behind, and so does a
 * process that exits (process.exit()) while a build runs: the native side destroys at exit a domain
 * it built and nobody took yet. A PvDomain that was returned outlives the process, as xl's domains do.
 * The guest's console indices are checked before every copy (native/xen/console_ring.c).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { BulkheadError, DestroyedError, InvalidConfigError } from '../errors';
import { ConsoleRing } from './console-ring';
import { destroyDomain, domainDeath, findDomain, unpauseDomain, type DomainEnd } from './domain';
import { setDomainMemory, setDomainVcpus } from './domain-resources';
import { XenUnavailableError } from './errors';
import { EventChannel } from './event-channel';
import { GrantTable, type GrantRegion } from './grant-table';
import { xenHostInfo } from './host';
import { requireXenLibraries } from './libraries';
import { loadNativeXen } from './native';
import { XenStore } from './xenstore';

export interface PvDomainConfig {
  /** An ELF PV kernel (vmlinux). */
  kernel: string;
  initrd?: string;
  cmdline?: string;
  memoryMiB: number;
  vcpus: number;
  /** The domain's name in XenStore (/local/domain/N/name). */
  name: string;
}

/** Xen vCPUs we allow per PV domain. */
export const PV_MAX_VCPUS = 128;

export type PvBuildStage = 'open' | 'create' | 'vcpus' | 'memory' | 'evtchn' | 'kernel' | 'initrd' | 'image' | 'xenstore' | 'console';

/** The build failed at `stage` (no domain was left behind). */
export class XenDomainBuildError extends BulkheadError {
  constructor(
    readonly stage: PvBuildStage,
    readonly errno: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('HYPERVISOR_ERROR', `building the PV domain failed at ${stage}: ${message}`, options);
  }
}

type NativeBuildConfig = { kernel: string; initrd?: string; cmdline?: string; memoryMiB: number; vcpus: number };
type NativeBuilt = { ok: true; domid: number; consolePort: number; xenstorePort: number; consoleMfn: number; xenstoreMfn: number; consoleGref: number; xenstoreGref: number };
type NativeBuildResult = NativeBuilt | { ok: false; errno: number; message: string; stage: PvBuildStage };

interface NativeBuild {
  xenBuildPvDomain(cfg: NativeBuildConfig): NativeBuildResult;
  /** The same build on the thread pool (xen_build.cc); always resolves. */
  xenBuildPvDomainAsync(cfg: NativeBuildConfig): Promise<NativeBuildResult>;
  xenIntroduceDomain(domid: number, mfn: number, port: number): { ok: true } | { ok: false; errno: number; message: string };
  /** Until this, a built domain is destroyed if the process exits (native/xen/unfinished.h). */
  xenBuildHandedOver(domid: number): void;
}

function checkFile(field: string, p: unknown): string {
  if (typeof p !== 'string' || p.length === 0) throw new InvalidConfigError(field, p, 'a path to a readable file');
  try {
    if (!statSync(p).isFile()) throw new Error('not a file');
    accessSync(p, constants.R_OK);
  } catch {
    throw new InvalidConfigError(field, p, 'a path to an existing, readable file');
  }
  return p;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function validate(cfg: PvDomainConfig): void {
  if (typeof cfg !== 'object' || cfg === null) throw new InvalidConfigError('config', cfg, 'an object');
  checkFile('kernel', cfg.kernel);
  if (cfg.initrd !== undefined) checkFile('initrd', cfg.initrd);
  if (cfg.cmdline !== undefined && (typeof cfg.cmdline !== 'string' || Buffer.byteLength(cfg.cmdline) > 1023 || cfg.cmdline.includes('\0'))) {
    throw new InvalidConfigError('cmdline', cfg.cmdline, 'a string of at most 1023 bytes (MAX_GUEST_CMDLINE), without NUL');
  }
  if (typeof cfg.name !== 'string' || !NAME_RE.test(cfg.name)) throw new InvalidConfigError('name', cfg.name, 'letters, digits, ".", "_", "-", 1 to 64 characters');
  if (!Number.isInteger(cfg.vcpus) || cfg.vcpus < 1 || cfg.vcpus > PV_MAX_VCPUS) throw new InvalidConfigError('vcpus', cfg.vcpus, `an integer from 1 to ${PV_MAX_VCPUS}`);
  if (!Number.isInteger(cfg.memoryMiB) || cfg.memoryMiB < 16) throw new InvalidConfigError('memoryMiB', cfg.memoryMiB, 'an integer >= 16');
}

/** A PV domain built by createPvDomain(), paused until unpause(). */
export class PvDomain implements Disposable {
  private destroyed = false;

  constructor(
    readonly domid: number,
    readonly name: string,
    private readonly feed: ConsoleFeed,
    private readonly ring: ConsoleRing,
    private readonly channel: EventChannel,
    private readonly localPort: number,
    private readonly grants: GrantTable,
    private readonly region: GrantRegion,
  ) {}

  /** The guest's PV console output (hvc0). Ends when the domain is destroyed. */
  get console(): Readable {
    return this.feed.stream;
  }

  unpause(): void {
    unpauseDomain(this.domid);
  }

  /** Its memory target and Xen's limit, as `xl mem-set` (setDomainMemory). */
  setMemory(memoryMiB: number): Promise<void> {
    if (this.destroyed) return Promise.reject(new DestroyedError('PV domain', 'set its memory'));
    return setDomainMemory(this.domid, memoryMiB);
  }

  /** How many of its vCPUs are online, as `xl vcpu-set` (setDomainVcpus). */
  setVcpus(vcpus: number): Promise<void> {
    if (this.destroyed) return Promise.reject(new DestroyedError('PV domain', 'set its vCPUs'));
    return setDomainVcpus(this.domid, vcpus);
  }

  /** Queues input for the guest's console; returns how many bytes fit. */
  write(data: string | Buffer): number {
    const n = this.ring.write(data);
    this.channel.notify(this.localPort);
    return n;
  }

  /** Resolves when the domain shuts down (with its reason) or is destroyed. */
  death(opts: { signal?: AbortSignal } = {}): Promise<DomainEnd> {
    return domainDeath(this.domid, opts);
  }

  /** Unmaps its console, unbinds its channel, destroys the domain and removes its XenStore keys. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    teardown(this.domid, { region: this.region, grants: this.grants, channel: this.channel, feed: this.feed });
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

interface Handles {
  region?: GrantRegion;
  grants?: GrantTable;
  channel?: EventChannel;
  feed?: ConsoleFeed;
}

function teardown(domid: number | undefined, h: Handles): void {
  const errors: unknown[] = [];
  const step = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      errors.push(err);
    }
  };
  // Our mappings of its pages first: a domain whose pages are still mapped lingers as a zombie.
  if (h.feed) step(() => h.feed!.stop());
  if (h.region) step(() => h.region!.release());
  if (h.grants) step(() => h.grants!.close());
  if (h.channel) step(() => h.channel!.close());
  if (domid !== undefined) {
    if (findDomain(domid)) step(() => destroyDomain(domid));
    step(() => {
      using xs = XenStore.open();
      xs.rm(`/local/domain/${domid}`);
    });
  }
  if (errors.length > 0) throw errors[0];
}

/** The console as a stream, and the way to end it before the ring's pages are unmapped. */
interface ConsoleFeed {
  stream: Readable;
  stop(): void;
}

function consoleFeed(ring: ConsoleRing, channel: EventChannel, localPort: number): ConsoleFeed {
  const events = channel.events();
  const out = new Readable({ read() {} });
  // An event already queued when the domain is torn down must not read the released ring.
  let stopped = false;
  const pump = () => {
    if (stopped) return;
    let any = false;
    for (;;) {
      const chunk = ring.read();
      if (chunk.length === 0) break;
      any = true;
      out.push(chunk);
    }
    // Tell the guest there is room again (a guest with a full ring waits for this).
    if (any) channel.notify(localPort);
  };
  void (async () => {
    try {
      pump();
      for await (const p of events) if (p === localPort) pump();
      if (!stopped) out.push(null);
    } catch (err) {
      if (!stopped && !out.destroyed) out.destroy(err as Error);
    }
  })();
  return {
    stream: out,
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (!out.destroyed) out.push(null);
    },
  };
}

function writeKeys(domid: number, cfg: PvDomainConfig, b: { consoleMfn: number; consolePort: number; xenstoreMfn: number; xenstorePort: number }): void {
  using xs = XenStore.open();
  const dom = `/local/domain/${domid}`;
  const ro = [{ domid: 0, read: false, write: false }, { domid, read: true, write: false }];
  const rw = [{ domid, read: false, write: false }, { domid: 0, read: true, write: true }];
  xs.mkdir(dom);
  xs.setPermissions(dom, ro);
  const put = (key: string, value: string, perms = ro) => {
    xs.write(`${dom}/${key}`, value);
    xs.setPermissions(`${dom}/${key}`, perms);
  };
  put('name', cfg.name);
  put('domid', String(domid));
  put('memory/static-max', String(cfg.memoryMiB * 1024));
  put('memory/target', String(cfg.memoryMiB * 1024));
  for (let i = 0; i < cfg.vcpus; i++) put(`cpu/${i}/availability`, 'online');
  // type "bulkhead": the console is ours, so xenconsoled (which serves type "xenconsoled") leaves it alone.
  put('console/type', 'bulkhead');
  put('console/ring-ref', String(b.consoleMfn));
  put('console/port', String(b.consolePort));
  put('console/limit', '1048576');
  put('store/ring-ref', String(b.xenstoreMfn));
  put('store/port', String(b.xenstorePort));
  for (const d of ['control', 'device', 'data', 'drivers', 'feature', 'attr', 'error']) {
    xs.mkdir(`${dom}/${d}`);
    xs.setPermissions(`${dom}/${d}`, rw);
  }
  xs.write(`${dom}/control/platform-feature-multiprocessor-suspend`, '1');
}

/** What is checked before any domain exists: the config, Xen's libraries, and Xen's free memory. */
function prepare(cfg: PvDomainConfig): { native: NativeBuild; build: NativeBuildConfig } {
  validate(cfg);
  requireXenLibraries(['libxentoollog', 'libxenctrl', 'libxenguest', 'libxenstore', 'libxenevtchn', 'libxengnttab']);
  const free = xenHostInfo().freeMemoryMiB;
  if (cfg.memoryMiB > free) throw new InvalidConfigError('memoryMiB', cfg.memoryMiB, `at most ${free} (the memory Xen has free)`);
  return { native: loadNativeXen() as unknown as NativeBuild, build: { kernel: cfg.kernel, initrd: cfg.initrd, cmdline: cfg.cmdline, memoryMiB: cfg.memoryMiB, vcpus: cfg.vcpus } };
}

/** The native build's failure as a typed error (the native side left no domain). */
function buildError(cfg: PvDomainConfig, r: { errno: number; message: string; stage: PvBuildStage }): Error {
  if (r.stage === 'open' && r.message.startsWith('xc_interface_open')) return new XenUnavailableError([], `createPvDomain: ${r.message}`);
  if (r.stage === 'kernel' && r.errno === 2) return new InvalidConfigError('kernel', cfg.kernel, `an existing, readable file (${r.message})`);
  if (r.stage === 'memory' && r.errno === 12) return new InvalidConfigError('memoryMiB', cfg.memoryMiB, `what Xen can allocate (${r.message})`);
  if (r.stage === 'vcpus' && r.errno === 22) return new InvalidConfigError('vcpus', cfg.vcpus, `what Xen accepts (${r.message})`);
  return new XenDomainBuildError(r.stage, r.errno, r.message);
}

/** After the native build: XenStore keys, introduction to xenstored, the console. Any failure tears it all down. */
function attach(native: NativeBuild, cfg: PvDomainConfig, r: NativeBuilt): PvDomain {
  const domid = r.domid;
  const h: Handles = {};
  let stage: PvBuildStage = 'xenstore';
  try {
    writeKeys(domid, cfg, r);
    const intro = native.xenIntroduceDomain(domid, r.xenstoreMfn, r.xenstorePort);
    if (!intro.ok) throw new XenDomainBuildError('xenstore', intro.errno, intro.message);
    stage = 'console';
    h.grants = GrantTable.open();
    h.region = h.grants.map(domid, [r.consoleGref], { writable: true });
    h.channel = EventChannel.open();
    const localPort = h.channel.bindInterdomain(domid, r.consolePort);
    const ring = new ConsoleRing(h.region);
    h.feed = consoleFeed(ring, h.channel, localPort);
    return new PvDomain(domid, cfg.name, h.feed, ring, h.channel, localPort, h.grants, h.region);
  } catch (err) {
    try {
      teardown(domid, h);
    } catch {
      // the build error is the one to report
    }
    if (err instanceof BulkheadError) throw err;
    throw new XenDomainBuildError(stage, 0, (err as Error).message, { cause: err });
  }
}

/**
 * Builds a PV domain from `kernel` (+ `initrd`) with libxenguest and returns it paused, with its
 * console attached. Throws InvalidConfigError for bad input (missing kernel, memory beyond what Xen
 * has free, vCPUs out of range) and XenDomainBuildError when Xen refuses a step. The build blocks
 * this thread (~0.7 s under TCG): createPvDomainAsync does not.
 */
export function createPvDomain(cfg: PvDomainConfig): PvDomain {
  const { native, build } = prepare(cfg);
  const r = native.xenBuildPvDomain(build);
  if (!r.ok) throw buildError(cfg, r);
  return takeOver(native, cfg, r);
}

/**
 * createPvDomain with libxenguest's build on the thread pool, so the event loop keeps running. The
 * same checks and errors. `signal` aborting before the build starts rejects with its reason; aborting
 * while it runs destroys the domain as soon as the build returns (nothing was written for it yet), and
 * rejects with the reason. The XenStore keys and the console are attached on this thread afterwards.
 */
export async function createPvDomainAsync(cfg: PvDomainConfig, opts: { signal?: AbortSignal } = {}): Promise<PvDomain> {
  opts.signal?.throwIfAborted();
  const { native, build } = prepare(cfg);
  const r = await native.xenBuildPvDomainAsync(build);
  if (!r.ok) throw buildError(cfg, r);
  if (opts.signal?.aborted) {
    try {
      destroyDomain(r.domid);
    } catch (err) {
      throw new XenDomainBuildError('create', 0, `aborted, and the domain ${r.domid} built meanwhile could not be destroyed: ${(err as Error).message}`, { cause: err });
    } finally {
      native.xenBuildHandedOver(r.domid);
    }
    throw opts.signal.reason;
  }
  return takeOver(native, cfg, r);
}

/** attach(), after which the domain is ours (a PvDomain) or gone: the exit-time cleanup lets go of it. */
function takeOver(native: NativeBuild, cfg: PvDomainConfig, r: NativeBuilt): PvDomain {
  try {
    return attach(native, cfg, r);
  } finally {
    native.xenBuildHandedOver(r.domid);
  }
}
