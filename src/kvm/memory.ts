/** Guest RAM as seen from the host: bounds-checked reads and writes by guest-physical address. */
import { callNative, GuestMemoryOutOfRangeError, isNativeError } from './errors';
import type { NativeVm } from './native';
import { hex, toU64 } from './values';

export interface MemoryRegion {
  /** Guest-physical address of the region. */
  gpa: bigint;
  size: bigint;
  /** The memfd backing it (owned by the VM). */
  memfd: number;
  fdOffset: bigint;
}

export interface MemoryOwner {
  nativeFor(operation: string): NativeVm;
}

export class GuestMemory {
  constructor(private readonly owner: MemoryOwner) {}

  /** Bytes of guest RAM. */
  get size(): number {
    return Number(callNative(() => this.owner.nativeFor('get the memory size').memSize()));
  }

  /** The RAM regions: [0, min(size, 3 GiB)) and, for larger VMs, the rest from 4 GiB. */
  regions(): MemoryRegion[] {
    return callNative(() => this.owner.nativeFor('list memory regions').memRegions());
  }

  /** Whether [gpa, gpa+length) is entirely guest RAM. */
  isRam(gpa: number | bigint, length: number): boolean {
    const native = this.owner.nativeFor('check guest memory');
    const [start, len] = checkRange(gpa, length);
    return callNative(() => native.memIsRam(start, len));
  }

  /** Copies `length` bytes starting at `gpa` out of the guest. */
  read(gpa: number | bigint, length: number): Buffer {
    const native = this.owner.nativeFor('read guest memory');
    const [start, len] = checkRange(gpa, length);
    const size = native.memSize();
    if (BigInt(len) > size) {
      throw new GuestMemoryOutOfRangeError(gpa, len, `a read of ${len} bytes is larger than guest RAM (${size} bytes)`);
    }
    return translateRange(start, len, () => native.memRead(start, len));
  }

  /** Copies `data` into the guest at `gpa`. */
  write(gpa: number | bigint, data: Uint8Array | ArrayBufferView): void {
    const native = this.owner.nativeFor('write guest memory');
    if (!ArrayBuffer.isView(data)) {
      throw new TypeError('write: data must be a Buffer, Uint8Array or another ArrayBufferView');
    }
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const [start, len] = checkRange(gpa, bytes.byteLength);
    translateRange(start, len, () => native.memWrite(start, bytes));
  }
}

function checkRange(gpa: number | bigint, length: number): [bigint, number] {
  const start = toU64(gpa);
  if (start === undefined) {
    throw new GuestMemoryOutOfRangeError(gpa, length, `guest-physical address ${String(gpa)} is not an integer 0 .. 2^64-1`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new GuestMemoryOutOfRangeError(gpa, length, `length ${String(length)} is not a non-negative integer`);
  }
  return [start, length];
}

function translateRange<T>(gpa: bigint, length: number, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isNativeError(err) && err.bhStatus === 'BH_E_OUT_OF_RANGE') {
      throw new GuestMemoryOutOfRangeError(
        gpa,
        length,
        `[${hex(gpa)}, ${hex(gpa + BigInt(length))}) is not entirely guest RAM: ${err.coreMessage ?? err.message}`,
        { cause: err },
      );
    }
    return callNative(() => {
      throw err;
    });
  }
}
