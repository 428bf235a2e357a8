/**
 * Loading a Linux kernel into a created VM: the C core (native/boot) validates the image, writes kernel,
 * initrd, command line, boot_params/e820, GDT, page tables and the MP table, and points vCPU 0 at the entry.
 *
 *   const vm = createVm({ memoryMiB: 256, vcpus: 1, irqchip: true });
 *   const info = vm.loadLinux({ kernel: '/path/vmlinux', initrd, cmdline: 'console=ttyS0' });
 *
 * A malformed image throws KernelInvalidError (code KERNEL_INVALID) naming the problem; a command line over
 * the kernel's limit or an initrd that does not fit throws InvalidConfigError saying what is allowed.
 */
import * as fs from 'node:fs';
import { BulkheadError, InvalidConfigError, InvalidStateError } from '../errors';
import { isNativeError, translateNativeError } from './errors';
import { loadNative, type NativeAddon, type NativeVm } from './native';
import { isIntegerIn } from './values';
import { Vm } from './vm';

// ------------------------------------------------------------------------------------------------
// The addon's `linux` export (native/binding/linux_wrap.cc).

export interface NativeBootInfo {
  format: number;
  entry: number;
  bootProtocol: number;
  entryPoint: bigint;
  kernelStart: bigint;
  kernelEnd: bigint;
  initrdAddr: bigint;
  initrdSize: bigint;
  cmdlineAddr: bigint;
  cmdlineMax: number;
  bootParamsAddr: bigint;
  mptableAddr: bigint;
  e820Entries: number;
  msrsRefused: number;
  notes: string;
}

export interface NativeLinux {
  boot(vm: NativeVm, kernel: Uint8Array, initrd: Uint8Array | null, cmdline: string | null, entry: number): NativeBootInfo;
  kernelImageCheck(kernel: Uint8Array, memoryBytes: bigint, entry: number): NativeBootInfo;
  /** Resolves true when the guest had halted every vCPU with interrupts off; the VM is then stopped. */
  guestHalted(vm: NativeVm): Promise<boolean>;
  serialCreate(
    vm: NativeVm,
    port: number,
    irq: number,
    ringBytes: number,
    onOutput?: (bytes: Buffer, dropped: number) => void,
  ): number;
  serialInput(vm: NativeVm, id: number, bytes: Uint8Array): number;
  serialRecentOutput(vm: NativeVm, id: number, max: number): Buffer;
  i8042Create(vm: NativeVm): number;
  i8042Resets(vm: NativeVm, id: number): number;
  debugExitCreate(vm: NativeVm, port: number): number;
  debugExitValue(vm: NativeVm, id: number): number;
}

/** @internal The addon's Linux functions (loaded with the addon). */
export function linuxNative(): NativeLinux {
  const addon = loadNative() as NativeAddon & { linux?: NativeLinux };
  if (!addon.linux) {
    throw new BulkheadError('NATIVE_ADDON_UNAVAILABLE', 'the native addon has no Linux boot support: rebuild it (npm run build:native)');
  }
  return addon.linux;
}

// ------------------------------------------------------------------------------------------------

/** A kernel image the loader refused: `message` names the problem (bad magic, truncated header, ...). */
export class KernelInvalidError extends BulkheadError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KERNEL_INVALID', message, options);
  }
}

export type LinuxEntry = 'auto' | '64bit' | 'pvh';

export interface LoadLinuxOptions {
  /** The kernel: an uncompressed vmlinux (ELF64) or a bzImage, as bytes or a file path. */
  kernel: Uint8Array | string;
  /** An initramfs (bytes or a path), placed as high in low RAM as it fits. */
  initrd?: Uint8Array | string;
  /** The kernel command line (at most the kernel's cmdline_size bytes, no NUL). Default: empty. */
  cmdline?: string;
  /**
   * 'auto' (default) and '64bit': the 64-bit boot protocol entry with boot_params in rsi; 'pvh': the
   * 32-bit XEN_ELFNOTE_PHYS32_ENTRY of a vmlinux built with CONFIG_PVH.
   */
  entry?: LinuxEntry;
}

/** What the loader found and where it put things (guest-physical addresses). */
export interface KernelImageInfo {
  format: 'vmlinux' | 'bzImage';
  /** The entry actually used. */
  entry: '64bit' | 'pvh';
  /** The bzImage boot protocol as "2.15", or null for a vmlinux. */
  bootProtocol: string | null;
  entryPoint: bigint;
  /** The kernel's footprint in guest RAM, including its init_size. */
  kernelStart: bigint;
  kernelEnd: bigint;
  /** The most command-line bytes this kernel accepts (excluding the NUL). */
  cmdlineMax: number;
}

export interface LinuxBootInfo extends KernelImageInfo {
  initrdAddr: bigint;
  initrdSize: bigint;
  cmdlineAddr: bigint;
  /** The zero page (64-bit entry) or hvm_start_info (PVH). */
  bootParamsAddr: bigint;
  mptableAddr: bigint;
  e820Entries: number;
  /** Boot MSRs KVM did not accept (named in notes). */
  msrsRefused: number;
  /** Non-fatal remarks from the loader, e.g. "MSR 0x1a0 refused"; empty when none. */
  notes: string;
}

const ENTRY_CODES: Record<LinuxEntry, number> = { auto: 0, '64bit': 1, pvh: 2 };
const KNOWN_FIELDS = ['kernel', 'initrd', 'cmdline', 'entry'] as const;
/** bh_boot_plan_make refuses less low RAM than this. */
const MIN_MEMORY_MIB = 2;

function imageInfo(n: NativeBootInfo): KernelImageInfo {
  return {
    format: n.format === 2 ? 'bzImage' : 'vmlinux',
    entry: n.entry === 2 ? 'pvh' : '64bit',
    bootProtocol: n.format === 2 ? `${n.bootProtocol >> 8}.${(n.bootProtocol & 0xff).toString().padStart(2, '0')}` : null,
    entryPoint: n.entryPoint,
    kernelStart: n.kernelStart,
    kernelEnd: n.kernelEnd,
    cmdlineMax: n.cmdlineMax,
  };
}

function bootInfo(n: NativeBootInfo): LinuxBootInfo {
  return {
    ...imageInfo(n),
    initrdAddr: n.initrdAddr,
    initrdSize: n.initrdSize,
    cmdlineAddr: n.cmdlineAddr,
    bootParamsAddr: n.bootParamsAddr,
    mptableAddr: n.mptableAddr,
    e820Entries: n.e820Entries,
    msrsRefused: n.msrsRefused,
    notes: n.notes,
  };
}

/** Bytes as given, or the contents of the file at that path (InvalidConfigError if unreadable). */
function readImage(field: string, value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string' && value.length > 0) {
    try {
      return fs.readFileSync(value);
    } catch (err) {
      throw new InvalidConfigError(field, value, `bytes (Uint8Array) or the path of a readable file (${(err as Error).message})`);
    }
  }
  throw new InvalidConfigError(field, value, 'bytes (Uint8Array) or a file path');
}

function entryCode(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value === 'string' && value in ENTRY_CODES) return ENTRY_CODES[value as LinuxEntry];
  throw new InvalidConfigError('entry', value, "'auto', '64bit' or 'pvh'");
}

/** The core says BH_E_INVALID_ARG for every refusal: the image ones become KERNEL_INVALID. */
function kernelError(err: unknown): unknown {
  if (isNativeError(err) && err.bhStatus === 'BH_E_INVALID_ARG') {
    return new KernelInvalidError(`kernel image refused: ${err.coreMessage ?? err.message}`, { cause: err });
  }
  return translateNativeError(err);
}

function checkBytes(kernel: Uint8Array, memoryMiB: number, entry: number): NativeBootInfo {
  try {
    return linuxNative().kernelImageCheck(kernel, BigInt(memoryMiB) * 1024n * 1024n, entry);
  } catch (err) {
    throw kernelError(err);
  }
}

/**
 * Validates a kernel image for a guest of `memoryMiB` without a VM: its format, entry point, footprint and
 * command-line limit. Throws KernelInvalidError naming what is wrong with it.
 */
export function checkKernelImage(kernel: Uint8Array | string, memoryMiB: number, entry: LinuxEntry = 'auto'): KernelImageInfo {
  if (!isIntegerIn(memoryMiB, MIN_MEMORY_MIB, 2 ** 40)) {
    throw new InvalidConfigError('memoryMiB', memoryMiB, `an integer >= ${MIN_MEMORY_MIB} (Linux needs at least 2 MiB of low RAM)`);
  }
  return imageInfo(checkBytes(readImage('kernel', kernel), memoryMiB, entryCode(entry)));
}

/** Loads a kernel into a created VM (see LoadLinuxOptions). Call before start(). */
export function loadLinux(vm: Vm, options: LoadLinuxOptions): LinuxBootInfo {
  const native = vm.nativeFor('load a Linux kernel');
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidConfigError('options', options, 'an object { kernel, initrd?, cmdline?, entry? }');
  }
  for (const key of Object.keys(options)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      throw new InvalidConfigError(key, (options as unknown as Record<string, unknown>)[key], `no such field; known fields: ${KNOWN_FIELDS.join(', ')}`);
    }
  }
  const state = vm.state;
  if (state !== 'created') throw new InvalidStateError('load a Linux kernel', state, ['created']);
  if (vm.memoryMiB < MIN_MEMORY_MIB) {
    throw new InvalidConfigError('memoryMiB', vm.memoryMiB, `at least ${MIN_MEMORY_MIB} MiB to boot Linux`);
  }
  const entry = entryCode(options.entry);
  const kernel = readImage('kernel', options.kernel);
  const initrd = options.initrd === undefined ? null : readImage('initrd', options.initrd);
  const cmdline = options.cmdline ?? '';
  if (typeof cmdline !== 'string' || cmdline.includes('\0')) {
    throw new InvalidConfigError('cmdline', cmdline, 'a string without NUL characters');
  }
  // The image first, so a command line over the limit is reported as such (with the limit) and a broken
  // image as KERNEL_INVALID, before anything touches guest memory.
  const checked = checkBytes(kernel, vm.memoryMiB, entry);
  const cmdlineBytes = Buffer.byteLength(cmdline);
  if (cmdlineBytes > checked.cmdlineMax) {
    throw new InvalidConfigError('cmdline', `${cmdlineBytes} bytes`, `at most ${checked.cmdlineMax} bytes (this kernel's cmdline_size)`);
  }
  try {
    return bootInfo(linuxNative().boot(native, kernel, initrd, cmdline, entry));
  } catch (err) {
    // The image passed its check: what is left to refuse is the initrd's placement.
    if (isNativeError(err) && err.bhStatus === 'BH_E_INVALID_ARG' && /initrd/.test(err.coreMessage ?? '')) {
      throw new InvalidConfigError(
        'initrd',
        `${initrd?.length ?? 0} bytes`,
        `an initrd that fits in this VM's ${vm.memoryMiB} MiB: ${err.coreMessage} (give the VM more memory or use a smaller initrd)`,
      );
    }
    if (isNativeError(err) && err.bhStatus === 'BH_E_STATE') {
      throw new BulkheadError('INVALID_STATE', err.message, { cause: err });
    }
    throw kernelError(err);
  }
}

declare module './vm' {
  interface Vm {
    /** Loads a Linux kernel (and initrd, command line) into this created VM. See loadLinux(). */
    loadLinux(options: LoadLinuxOptions): LinuxBootInfo;
  }
}

Vm.prototype.loadLinux = function loadLinuxMethod(this: Vm, options: LoadLinuxOptions): LinuxBootInfo {
  return loadLinux(this, options);
};
