/**
 * A machine: a Linux guest with the devices a zone needs, built in one call by the C core's machine builder
 * (native/machine) and driven from here.
 *
 *   await using m = createMachine({
 *     kernel: '/path/vmlinux', initrd: 'initramfs.cpio', memoryMiB: 256, vcpus: 1,
 *     disks: [{ path: 'rootfs.erofs', readOnly: true, serial: 'root' }],
 *     vsock: { udsPath: '/run/zone-1/vsock.sock' },          // guest CID 3 by default
 *   });
 *   m.on('console', (bytes) => process.stdout.write(bytes));
 *   m.on('bootMarker', ({ marker, sinceCreateMs }) => ...);  // the guest wrote the power device
 *   m.start();
 *   const exit = await m.wait();                             // exit.kind: 'power-off' | 'reboot' | 'panic' | ...
 *
 * Devices: the disks (vda, vdb, ... in order), hvc0 (virtio-console), virtio-rng, virtio-vsock (Firecracker's
 * Unix-socket scheme: a guest connection to host port P reaches `<udsPath>_P`; a host client connects to
 * `<udsPath>`, writes `CONNECT <port>\n` and reads `OK <host port>\n`), a 16550 at ttyS0 for early boot, the i8042
 * (its reset line) and the paravirtual power device. The command line starts with `reboot=k,panic_warm panic=-1`
 * and ends with the `virtio_mmio.device=` entries; the caller's part goes between (default `console=hvc0`).
 *
 * How the guest ended is `exit.kind`, a code, never a message to match:
 *   'power-off' / 'reboot'  the power device (or, for reboot, the kernel's own reset)
 *   'panic'                 the guest kernel panicked (with its console tail)
 *   'triple-fault'          a triple fault that was not a panic's reset
 *   'crash'                 the VM failed (KVM internal error, entry failure, ...)
 *   'device-failure'        a device caught the guest misusing it (exit.device names it); see keepRunningOnDeviceFailure
 *   'stopped'               stop() or destroy() ended it
 * A broken device is always reported first as a 'deviceBroken' event. The machine never ends by itself on a
 * halted guest: a guest powers off through the power device.
 *
 * Events (on the JavaScript thread, in order): 'console' (bytes, source 'serial' | 'hvc0'), 'bootMarker',
 * 'deviceBroken', 'end' (once).
 */
import { EventEmitter } from 'node:events';
import { DestroyedError, InvalidConfigError, InvalidStateError } from '../errors';
import { callNative, callNativeAsync } from './errors';
import { exitFromNative, type VmExit } from './exits';
import { hostMemoryMiB } from './config';
import { Kvm, sharedHypervisor } from './hypervisor';
import type { LinuxEntry } from './linux';
import type { NativeAddon, NativeExit, NativeKvm } from './native';
import { isIntegerIn } from './values';

// ------------------------------------------------------------------------------------------------
// The addon's Machine (native/binding/machine_wrap.cc).

interface NativeMachineSpec {
  kernel: string | Uint8Array;
  initrd?: string | Uint8Array;
  cmdline: string;
  entry: number;
  memoryBytes: bigint;
  vcpus: number;
  disks: { path: string; readOnly: boolean; serial?: string }[];
  virtioConsole: boolean;
  rng: boolean;
  vsock: boolean;
  vsockCid: number;
  vsockUds?: string;
  keepRunningOnDeviceFailure: boolean;
  consoleTailBytes: number;
}

interface NativeDeviceStats {
  requests: number;
  bytesIn: number;
  bytesOut: number;
  interrupts: number;
  notifications: number;
  broken: number;
}

interface NativeMachineStats {
  exits: number;
  pioExits: number;
  mmioExits: number;
  pauses: number;
  vcpuCpuNs: number[];
  ioThreadCpuNs: number;
  disks: NativeDeviceStats[];
  console: NativeDeviceStats;
  rng: NativeDeviceStats;
  vsock: NativeDeviceStats;
  vsockConnections: number;
  bootMarkers: number;
  firstMarkerNs: number;
  guestResidentBytes: number;
}

interface NativeMachineExit {
  end: number;
  nsSinceCreate: number;
  device: string;
  message: string;
  cause: NativeExit;
}

interface NativeMachine {
  start(): void;
  stop(): Promise<void>;
  destroy(): Promise<void>;
  consoleInput(source: number, bytes: Uint8Array): number;
  consoleTail(max: number): Buffer;
  stats(): NativeMachineStats;
  vmState(): number;
}

type MachineMessage =
  | ['console', { source: number; bytes: Buffer; dropped: number }]
  | ['event', { kind: number; marker: number; nsSinceCreate: number; device: string; reason: string }]
  | ['end', NativeMachineExit];

type MachineAddon = NativeAddon & {
  Machine: new (kvm: NativeKvm, spec: NativeMachineSpec, onMessage: (...m: MachineMessage) => void) => NativeMachine;
};

// bh_machine_end and bh_machine_event_kind / bh_console_source (bulkhead.h).
const END_KINDS: Record<number, MachineEndKind> = {
  1: 'power-off',
  2: 'reboot',
  3: 'panic',
  4: 'triple-fault',
  5: 'crash',
  6: 'device-failure',
  7: 'stopped',
};
const EVENT_BOOT_MARKER = 1;
const EVENT_DEVICE_BROKEN = 2;
const CONSOLE_SOURCES = { default: 0, serial: 1, hvc0: 2 } as const;

// ------------------------------------------------------------------------------------------------

export interface MachineDisk {
  /** The backing file (or block device); its size, in 512-byte sectors, is the disk's. */
  path: string;
  /** The guest sees a read-only disk (VIRTIO_BLK_F_RO) and every write is refused. Default false. */
  readOnly?: boolean;
  /** The disk's serial id (VIRTIO_BLK_T_GET_ID, /sys/block/vdX/serial): at most 20 ASCII characters. */
  serial?: string;
}

export interface MachineVsock {
  /** The host side's Unix socket (at most 96 bytes); guest connections to host port P go to `${udsPath}_${P}`. */
  udsPath: string;
  /** The guest's CID, 3 .. 2^32-1. Default 3. */
  guestCid?: number;
}

export interface MachineSpec {
  /** vmlinux or bzImage: a path (mapped, not read into JavaScript memory) or bytes. */
  kernel: string | Uint8Array;
  initrd?: string | Uint8Array;
  /** The caller's part of the command line. Default 'console=hvc0' (or 'console=ttyS0' without a console). */
  cmdline?: string;
  entry?: LinuxEntry;
  /** Default 256. */
  memoryMiB?: number;
  /** Default 1. */
  vcpus?: number;
  /** vda, vdb, ... in this order; at most 8. */
  disks?: MachineDisk[];
  /** virtio-console as hvc0. Default true. */
  console?: boolean;
  /** virtio-rng (/dev/hwrng). Default true. */
  rng?: boolean;
  vsock?: MachineVsock;
  /** A broken device is reported ('deviceBroken') and, unless this is set, ends the machine ('device-failure'). */
  keepRunningOnDeviceFailure?: boolean;
  /** Console output kept for exit.consoleTail and consoleTail(). Default 65536. */
  consoleTailBytes?: number;
  /** The hypervisor (default: the process-wide one). */
  kvm?: Kvm;
}

export type MachineEndKind = 'power-off' | 'reboot' | 'panic' | 'triple-fault' | 'crash' | 'device-failure' | 'stopped';

export interface MachineExit {
  kind: MachineEndKind;
  /** For people, e.g. "panic: kernel panic (reset through the i8042 after the panic)". */
  message: string;
  /** The last console lines (ttyS0 and hvc0), e.g. the panic's. */
  consoleTail: string;
  /** 'device-failure': the device, e.g. 'vda' or 'vsock'. */
  device?: string;
  /** The first vCPU exit that was not a plain stop, if any. */
  vcpuExit?: VmExit;
  /** From creation to the end, as the core measured it. */
  sinceCreateMs: number;
}

export interface MachineBootMarker {
  /** The number the guest wrote with the MARKER command. */
  marker: number;
  /** Since the machine (its VM) was created. */
  sinceCreateMs: number;
}

export interface MachineDeviceBroken {
  device: string;
  reason: string;
  sinceCreateMs: number;
}

export interface MachineEvents {
  console: [bytes: Buffer, source: 'serial' | 'hvc0'];
  bootMarker: [marker: MachineBootMarker];
  deviceBroken: [info: MachineDeviceBroken];
  end: [exit: MachineExit];
}

export interface MachineDeviceStats {
  requests: number;
  /** Guest -> host bytes (written to a disk, sent over vsock, console output). */
  bytesIn: number;
  /** Host -> guest bytes. */
  bytesOut: number;
  interrupts: number;
  notifications: number;
  /** Times the device was marked broken. */
  broken: number;
}

export interface MachineStats {
  exits: number;
  pioExits: number;
  mmioExits: number;
  /** Times the VM was paused: 0, since nothing polls a machine (power-off comes from the power device). */
  pauses: number;
  /** CPU time of each vCPU thread. */
  vcpuCpuMs: number[];
  /** CPU time of the I/O thread that serves the devices. */
  ioThreadCpuMs: number;
  disks: MachineDeviceStats[];
  console: MachineDeviceStats;
  rng: MachineDeviceStats;
  vsock: MachineDeviceStats;
  vsockConnections: number;
  bootMarkers: number;
  /** When the first boot marker arrived (since creation), or undefined. */
  firstMarkerMs: number | undefined;
  /** Guest RAM resident on the host: the pages allocated to its memfd (touched by the guest, the loader or a device). */
  guestResidentBytes: number;
}

export type MachineState = 'created' | 'running' | 'ended' | 'destroyed';

const KNOWN_FIELDS = [
  'kernel', 'initrd', 'cmdline', 'entry', 'memoryMiB', 'vcpus', 'disks', 'console', 'rng', 'vsock',
  'keepRunningOnDeviceFailure', 'consoleTailBytes', 'kvm',
] as const;
const ENTRY_CODES: Record<LinuxEntry, number> = { auto: 0, '64bit': 1, pvh: 2 };
const MAX_DISKS = 8;
const TAIL_TEXT_BYTES = 8192;

/** Machines that were started and have not ended: kept reachable so a running guest is never collected. */
const running = new Set<Machine>();

function image(field: string, v: unknown, optional: boolean): string | Uint8Array | undefined {
  if (v === undefined && optional) return undefined;
  if (v instanceof Uint8Array && v.length > 0) return v;
  if (typeof v === 'string' && v.length > 0 && !v.includes('\0')) return v;
  throw new InvalidConfigError(field, v, 'a file path or non-empty bytes (Uint8Array)');
}

function bool(field: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new InvalidConfigError(field, v, 'true, false or absent');
  return v;
}

function validateDisks(v: unknown): NativeMachineSpec['disks'] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_DISKS) {
    throw new InvalidConfigError('disks', v, `an array of at most ${MAX_DISKS} { path, readOnly?, serial? }`);
  }
  return v.map((d: unknown, i) => {
    if (typeof d !== 'object' || d === null) throw new InvalidConfigError(`disks[${i}]`, d, 'an object { path, readOnly?, serial? }');
    const disk = d as Record<string, unknown>;
    for (const key of Object.keys(disk)) {
      if (!['path', 'readOnly', 'serial'].includes(key)) {
        throw new InvalidConfigError(`disks[${i}].${key}`, disk[key], 'no such field; known fields: path, readOnly, serial');
      }
    }
    if (typeof disk.path !== 'string' || disk.path.length === 0 || disk.path.includes('\0')) {
      throw new InvalidConfigError(`disks[${i}].path`, disk.path, 'the path of the backing file');
    }
    if (disk.serial !== undefined && (typeof disk.serial !== 'string' || !/^[\x20-\x7e]{0,20}$/.test(disk.serial))) {
      throw new InvalidConfigError(`disks[${i}].serial`, disk.serial, 'at most 20 printable ASCII characters');
    }
    return {
      path: disk.path,
      readOnly: bool(`disks[${i}].readOnly`, disk.readOnly, false),
      ...(disk.serial !== undefined ? { serial: disk.serial as string } : {}),
    };
  });
}

function validate(spec: MachineSpec, kvm: Kvm): NativeMachineSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new InvalidConfigError('spec', spec, 'an object { kernel, initrd?, cmdline?, memoryMiB?, vcpus?, disks?, ... }');
  }
  for (const key of Object.keys(spec)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      throw new InvalidConfigError(key, (spec as unknown as Record<string, unknown>)[key], `no such field; known fields: ${KNOWN_FIELDS.join(', ')}`);
    }
  }
  const memoryMiB = spec.memoryMiB ?? 256;
  const maxMiB = hostMemoryMiB();
  if (!isIntegerIn(memoryMiB, 2, maxMiB)) {
    throw new InvalidConfigError('memoryMiB', memoryMiB, `an integer from 2 to ${maxMiB} (the host's MemTotal in MiB)`);
  }
  const vcpus = spec.vcpus ?? 1;
  if (!isIntegerIn(vcpus, 1, kvm.maxVcpus)) {
    throw new InvalidConfigError('vcpus', vcpus, `an integer from 1 to ${kvm.maxVcpus} (this hypervisor's maximum)`);
  }
  const console = bool('console', spec.console, true);
  const cmdline = spec.cmdline ?? (console ? 'console=hvc0' : 'console=ttyS0');
  if (typeof cmdline !== 'string' || cmdline.includes('\0')) throw new InvalidConfigError('cmdline', cmdline, 'a string without NUL characters');
  if (spec.entry !== undefined && !(spec.entry in ENTRY_CODES)) throw new InvalidConfigError('entry', spec.entry, "'auto', '64bit' or 'pvh'");
  let vsockCid = 0;
  let vsockUds: string | undefined;
  if (spec.vsock !== undefined) {
    const v = spec.vsock as unknown as Record<string, unknown>;
    if (typeof v !== 'object' || v === null) throw new InvalidConfigError('vsock', v, 'an object { udsPath, guestCid? }');
    for (const key of Object.keys(v)) {
      if (!['udsPath', 'guestCid'].includes(key)) throw new InvalidConfigError(`vsock.${key}`, v[key], 'no such field; known fields: udsPath, guestCid');
    }
    if (typeof v.udsPath !== 'string' || v.udsPath.length === 0 || Buffer.byteLength(v.udsPath) > 96 || v.udsPath.includes('\0')) {
      throw new InvalidConfigError('vsock.udsPath', v.udsPath, 'a socket path of 1 .. 96 bytes (`<udsPath>_<port>` must fit a socket address)');
    }
    const cid = v.guestCid ?? 3;
    if (!isIntegerIn(cid, 3, 0xffffffff)) throw new InvalidConfigError('vsock.guestCid', cid, 'an integer from 3 to 2^32-1');
    vsockCid = cid;
    vsockUds = v.udsPath;
  }
  const tail = spec.consoleTailBytes ?? 65536;
  if (!isIntegerIn(tail, 1024, 64 * 1024 * 1024)) throw new InvalidConfigError('consoleTailBytes', tail, 'an integer from 1024 to 67108864');
  const initrd = image('initrd', spec.initrd, true);
  return {
    kernel: image('kernel', spec.kernel, false) as string | Uint8Array,
    ...(initrd !== undefined ? { initrd } : {}),
    cmdline,
    entry: ENTRY_CODES[spec.entry ?? 'auto'],
    memoryBytes: BigInt(memoryMiB) * 1024n * 1024n,
    vcpus,
    disks: validateDisks(spec.disks),
    virtioConsole: console,
    rng: bool('rng', spec.rng, true),
    vsock: spec.vsock !== undefined,
    vsockCid,
    ...(vsockUds !== undefined ? { vsockUds } : {}),
    keepRunningOnDeviceFailure: bool('keepRunningOnDeviceFailure', spec.keepRunningOnDeviceFailure, false),
    consoleTailBytes: tail,
  };
}

function deviceStats(s: NativeDeviceStats): MachineDeviceStats {
  return { ...s };
}

export class Machine extends EventEmitter<MachineEvents> {
  readonly memoryMiB: number;
  readonly vcpus: number;
  #native: NativeMachine | undefined;
  #state: MachineState = 'created';
  #exit: MachineExit | undefined;
  readonly #endWaiters = new Set<(exit: MachineExit) => void>();
  #destroying: Promise<void> | undefined;
  #stopping: Promise<MachineExit> | undefined;

  /** @internal Use createMachine() or kvm's createMachine(). */
  constructor(spec: MachineSpec) {
    super();
    const kvm = spec.kvm ?? sharedHypervisor();
    if (!(kvm instanceof Kvm)) throw new InvalidConfigError('kvm', kvm, 'a Kvm from openHypervisor()');
    const native = validate(spec, kvm);
    this.memoryMiB = Number(native.memoryBytes / 1024n / 1024n);
    this.vcpus = native.vcpus;
    const { addon, native: nativeKvm } = kvm.nativeParts('create a machine');
    // The addon holds this callback for the machine's life: it must not keep the Machine itself alive.
    const self = new WeakRef(this);
    this.#native = callNative(
      () =>
        new (addon as MachineAddon).Machine(nativeKvm, native, (...m: MachineMessage) => {
          const machine = self.deref();
          if (machine) machine.#onMessage(m);
        }),
    );
  }

  /** 'created' | 'running' | 'ended' | 'destroyed'. */
  get state(): MachineState {
    return this.#state;
  }

  /** How the machine ended, once it has. */
  get exit(): MachineExit | undefined {
    return this.#exit;
  }

  /** Starts the guest (created -> running). */
  start(): void {
    const native = this.#nativeFor('start a machine');
    if (this.#state !== 'created') throw new InvalidStateError('start a machine', this.#state, ['created']);
    callNative(() => native.start());
    this.#state = 'running';
    running.add(this);
  }

  /** Resolves with how the machine ended, or undefined if `timeoutMs` passed first (no timeout: as long as it takes). */
  wait(timeoutMs?: number): Promise<MachineExit | undefined> {
    if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0 && Number.isFinite(timeoutMs))) {
      return Promise.reject(new InvalidConfigError('timeoutMs', timeoutMs, 'a finite number of milliseconds >= 0, or absent'));
    }
    if (this.#exit) return Promise.resolve(this.#exit);
    if (this.#state === 'destroyed') return Promise.reject(new DestroyedError('machine', 'wait for the end'));
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (exit: MachineExit): void => {
        if (timer) clearTimeout(timer);
        this.#endWaiters.delete(done);
        resolve(exit);
      };
      this.#endWaiters.add(done);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#endWaiters.delete(done);
          resolve(this.#exit);
        }, timeoutMs);
      }
    });
  }

  /** Ends the machine ('stopped', unless it had ended already) and resolves with its exit. */
  stop(): Promise<MachineExit> {
    if (this.#exit) return Promise.resolve(this.#exit);
    this.#stopping ??= (async () => {
      const native = this.#nativeFor('stop a machine');
      if (this.#state === 'created') {
        // Never started: nothing ran, so there is no end to wait for.
        this.#finish({ kind: 'stopped', message: 'stopped: never started', consoleTail: '', sinceCreateMs: 0 });
      } else {
        await callNativeAsync(() => native.stop());
      }
      return this.wait() as Promise<MachineExit>;
    })();
    return this.#stopping;
  }

  /**
   * Ends the machine if needed and releases everything: its threads, fds, guest memory, the vsock socket file.
   * Any later use throws DestroyedError (code VM_DESTROYED). Calling it again returns the same promise.
   */
  destroy(): Promise<void> {
    this.#destroying ??= (async () => {
      const native = this.#native;
      if (!native) return;
      try {
        if (this.#state !== 'ended') await this.stop().catch(() => undefined);
        await native.destroy();
      } finally {
        this.#native = undefined;
        this.#state = 'destroyed';
        running.delete(this);
      }
    })();
    return this.#destroying;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /** Host -> guest console bytes (hvc0 if the machine has it, else ttyS0); returns how many were queued. */
  writeConsole(data: string | Uint8Array, to: 'hvc0' | 'serial' | 'default' = 'default'): number {
    const native = this.#nativeFor('write to the console');
    if (!(to in CONSOLE_SOURCES)) throw new InvalidConfigError('to', to, "'hvc0', 'serial' or 'default'");
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (!(bytes instanceof Uint8Array)) throw new InvalidConfigError('data', data, 'a string or bytes (Uint8Array)');
    return callNative(() => native.consoleInput(CONSOLE_SOURCES[to], bytes));
  }

  /** The most recent console output (ttyS0 and hvc0 together), as text. */
  consoleTail(maxBytes = TAIL_TEXT_BYTES): string {
    const native = this.#nativeFor('read the console tail');
    if (!isIntegerIn(maxBytes, 0, 64 * 1024 * 1024)) throw new InvalidConfigError('maxBytes', maxBytes, 'an integer 0 .. 67108864');
    return callNative(() => native.consoleTail(maxBytes)).toString('utf8');
  }

  /** Host-side figures: exits, vCPU and I/O-thread CPU time, per-device counters. */
  stats(): MachineStats {
    const s = callNative(() => this.#nativeFor('read the machine stats').stats());
    return {
      exits: s.exits,
      pioExits: s.pioExits,
      mmioExits: s.mmioExits,
      pauses: s.pauses,
      vcpuCpuMs: s.vcpuCpuNs.map((ns) => ns / 1e6),
      ioThreadCpuMs: s.ioThreadCpuNs / 1e6,
      disks: s.disks.map(deviceStats),
      console: deviceStats(s.console),
      rng: deviceStats(s.rng),
      vsock: deviceStats(s.vsock),
      vsockConnections: s.vsockConnections,
      bootMarkers: s.bootMarkers,
      firstMarkerMs: s.bootMarkers ? s.firstMarkerNs / 1e6 : undefined,
      guestResidentBytes: s.guestResidentBytes,
    };
  }

  // ---------------------------------------------------------------------------------------------

  #nativeFor(operation: string): NativeMachine {
    if (!this.#native || this.#destroying) throw new DestroyedError('machine', operation);
    return this.#native;
  }

  #finish(exit: MachineExit): void {
    if (this.#exit) return;
    this.#exit = exit;
    this.#state = 'ended';
    running.delete(this);
    this.emit('end', exit);
    for (const w of [...this.#endWaiters]) w(exit);
  }

  #onMessage(m: MachineMessage): void {
    switch (m[0]) {
      case 'console':
        this.emit('console', m[1].bytes, m[1].source === 2 ? 'hvc0' : 'serial');
        break;
      case 'event': {
        const e = m[1];
        if (e.kind === EVENT_BOOT_MARKER) this.emit('bootMarker', { marker: e.marker, sinceCreateMs: e.nsSinceCreate / 1e6 });
        else if (e.kind === EVENT_DEVICE_BROKEN) {
          this.emit('deviceBroken', { device: e.device, reason: e.reason, sinceCreateMs: e.nsSinceCreate / 1e6 });
        }
        break;
      }
      case 'end': {
        const x = m[1];
        let tail = '';
        try {
          tail = this.#native ? this.#native.consoleTail(TAIL_TEXT_BYTES).toString('utf8') : '';
        } catch {
          // destroyed meanwhile: no tail
        }
        this.#finish({
          kind: END_KINDS[x.end] ?? 'crash',
          message: x.message,
          consoleTail: tail,
          ...(x.device ? { device: x.device } : {}),
          ...(x.cause.reason !== 0 ? { vcpuExit: exitFromNative(x.cause) } : {}),
          sinceCreateMs: x.nsSinceCreate / 1e6,
        });
        break;
      }
    }
  }
}

/** Builds a machine (state 'created') from `spec` on the process-wide hypervisor (or spec.kvm). See Machine. */
export function createMachine(spec: MachineSpec): Machine {
  return new Machine(spec);
}
