/**
 * Port-I/O and MMIO handlers written in JavaScript. A guest access reaches the handler on the JavaScript
 * thread while the vCPU waits; the handler's return value (or resolved promise) is what a read returns.
 * A handler that throws (or rejects) fails the access: the VM stops with an 'io-error' exit.
 */
import { InvalidConfigError } from '../errors';
import type { NativeIoMessage } from './native';
import { toU64 } from './values';

export interface IoAccess {
  vcpu: number;
  /** 'pio' for port I/O (IN/OUT), 'mmio' for memory-mapped I/O. */
  space: 'pio' | 'mmio';
  /** The port or guest-physical address accessed. */
  addr: number;
  /** addr minus the base the handler was registered at. */
  offset: number;
  /** 1, 2, 4 or 8 bytes. */
  size: 1 | 2 | 4 | 8;
  isWrite: boolean;
  /** For writes, the value written (little-endian bytes as an integer); 0n for reads. */
  data: bigint;
}

/** What a read returns: a number or bigint (truncated to `size` bytes), bytes, or nothing (all ones). */
export type IoValue = number | bigint | Uint8Array | undefined | void;
export type IoHandler = (access: IoAccess) => IoValue | Promise<IoValue>;

/** The value to complete a read with, as an unsigned integer of `size` bytes. */
export function ioValueToU64(value: IoValue, size: number): bigint {
  const mask = (1n << BigInt(8 * size)) - 1n;
  if (value === undefined) return mask;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`I/O handler returned ${value}: not an integer`);
    return BigInt.asUintN(64, BigInt(value)) & mask;
  }
  if (typeof value === 'bigint') return BigInt.asUintN(64, value) & mask;
  if (value instanceof Uint8Array) {
    let out = 0n;
    for (let i = Math.min(size, value.length) - 1; i >= 0; i--) out = (out << 8n) | BigInt(value[i] ?? 0);
    return out;
  }
  throw new TypeError(`I/O handler returned ${typeof value}; expected number, bigint, Uint8Array or nothing`);
}

export function accessFromNative(m: NativeIoMessage): IoAccess {
  return {
    vcpu: m.vcpu,
    space: m.isMmio ? 'mmio' : 'pio',
    addr: Number(m.addr),
    offset: Number(m.offset),
    size: m.size as IoAccess['size'],
    isWrite: m.isWrite,
    data: m.data,
  };
}

export function validatePortRange(base: unknown, length: unknown): { base: number; length: number } {
  if (typeof base !== 'number' || !Number.isInteger(base) || base < 0 || base > 0xffff) {
    throw new InvalidConfigError('onPort.base', base, 'an integer port number 0 .. 0xffff');
  }
  const max = 0x10000 - base;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || length > max) {
    throw new InvalidConfigError('onPort.length', length, `an integer 1 .. ${max} (ports end at 0xffff)`);
  }
  return { base, length };
}

export function validateMmioRange(base: unknown, length: unknown): { base: bigint; length: bigint } {
  const b = toU64(base);
  if (b === undefined) throw new InvalidConfigError('onMmio.base', base, 'a guest-physical address 0 .. 2^64-1');
  const l = toU64(length);
  if (l === undefined || l === 0n || b + l > 1n << 64n) {
    throw new InvalidConfigError('onMmio.length', length, `an integer 1 .. ${(1n << 64n) - b} (the range must not wrap)`);
  }
  return { base: b, length: l };
}

export function validateHandler(field: string, handler: unknown): IoHandler {
  if (typeof handler !== 'function') throw new InvalidConfigError(field, handler, 'a function (access) => value');
  return handler as IoHandler;
}
