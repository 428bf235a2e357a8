/**
 * Loading the native addon (build/Release or prebuilds/, via node-gyp-build from the package root) and
 * the shape of what it exports. Loaded lazily, so `bulkhead doctor` can report a missing addon.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../util/package-root';
import { BulkheadError } from '../errors';

export interface NativeCapability {
  name: string;
  id: number;
  value: number;
}

export type NativeProbe =
  | { ok: true; apiVersion: number; maxVcpus: number; capabilities: NativeCapability[] }
  | { ok: false; bhStatus: string; errno: number; message: string };

export interface NativeKvm {
  apiVersion(): number;
  maxVcpus(): number;
  checkExtension(cap: number): number;
  capabilities(): NativeCapability[];
  close(): void;
}

export interface NativeSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
}

export interface NativeDtable {
  base: bigint;
  limit: number;
}

export type NativeRegs = Record<
  | 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi' | 'rsp' | 'rbp'
  | 'r8' | 'r9' | 'r10' | 'r11' | 'r12' | 'r13' | 'r14' | 'r15'
  | 'rip' | 'rflags',
  bigint
>;

export interface NativeSregs {
  cs: NativeSegment;
  ds: NativeSegment;
  es: NativeSegment;
  fs: NativeSegment;
  gs: NativeSegment;
  ss: NativeSegment;
  tr: NativeSegment;
  ldt: NativeSegment;
  gdt: NativeDtable;
  idt: NativeDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

export interface NativeExit {
  vcpu: number;
  reason: number;
  kvmExitReason: number;
  detail: bigint[];
  errno: number;
  rip: bigint;
  message: string;
}

export interface NativeIoMessage {
  handler: number;
  vcpu: number;
  seq: number;
  isMmio: boolean;
  isWrite: boolean;
  size: number;
  addr: bigint;
  offset: bigint;
  data: bigint;
}

export interface NativeStateMessage {
  state: number;
  current: number;
}

/** Called on the JavaScript thread for each message a VM posts, in order. */
export type NativeMessageHandler = (
  kind: 'exit' | 'state' | 'io',
  payload: NativeExit | NativeStateMessage | NativeIoMessage,
) => void;

export interface NativeStats {
  exits: number;
  pioExits: number;
  mmioExits: number;
  unhandledPio: number;
  unhandledMmio: number;
  /** Successful pauses (a power-off watch pauses to look; a machine never does). */
  pauses: number;
}

export interface NativeMemRegion {
  gpa: bigint;
  size: bigint;
  memfd: number;
  fdOffset: bigint;
}

export interface NativeVm {
  state(): number;
  vcpuCount(): number;
  hasIrqchip(): boolean;
  memSize(): bigint;
  memRegions(): NativeMemRegion[];
  memRead(gpa: bigint, length: number): Buffer;
  memWrite(gpa: bigint, data: Uint8Array): void;
  memIsRam(gpa: bigint, length: number): boolean;
  getRegs(vcpu: number): NativeRegs;
  setRegs(vcpu: number, regs: NativeRegs): void;
  getSregs(vcpu: number): NativeSregs;
  setSregs(vcpu: number, sregs: NativeSregs): void;
  registerPio(base: number, length: number, handlerId: number): void;
  registerMmio(base: bigint, length: bigint, handlerId: number): void;
  completeIo(vcpu: number, seq: number, ok: boolean, value: bigint, size: number): boolean;
  start(): void;
  resume(): void;
  stop(): Promise<void>;
  pause(): Promise<void>;
  destroy(): Promise<void>;
  stats(): NativeStats;
  setIrqLine(gsi: number, level: boolean): void;
  addIrqfd(gsi: number): number;
  addIoeventfd(addr: bigint, length: number, isMmio: boolean, datamatch?: bigint): number;
  vmFd(): number;
  vcpuFd(vcpu: number): number;
}

export interface NativeAddon {
  Kvm: new (path?: string) => NativeKvm;
  Vm: new (
    kvm: NativeKvm,
    config: { memoryBytes: bigint; vcpus: number; irqchip: boolean },
    onMessage: NativeMessageHandler,
  ) => NativeVm;
  probeKvm(path?: string): NativeProbe;
  dlopenCheck(names: string[]): { ok: true; name: string } | { ok: false; errors: string[] };
  vsockCheck(): { ok: boolean; errno: number; message: string };
  eventfdTryRead(fd: number): bigint;
  eventfdWrite(fd: number, value: bigint): void;
  constants: Record<string, number>;
}

let cached: NativeAddon | undefined;

/** The addon, loaded once. Throws BulkheadError NATIVE_ADDON_UNAVAILABLE saying why it cannot load. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  let root = '(unknown)';
  try {
    // $BULKHEAD_ADDON: an addon built elsewhere, e.g. the ASan/UBSan build the suite runs the KVM tests on.
    const explicit = process.env.BULKHEAD_ADDON;
    if (explicit) {
      root = explicit;
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(explicit) as NativeAddon;
      return cached;
    }
    root = packageRoot();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    cached = nodeGypBuild(root) as NativeAddon;
    return cached;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new BulkheadError(
      'NATIVE_ADDON_UNAVAILABLE',
      `the native addon could not be loaded from ${root}: ${why}. ` +
        'Build it with `npm run build:native` (needs a C/C++ toolchain), or install a package that ships prebuilds/.',
      { cause: err },
    );
  }
}
