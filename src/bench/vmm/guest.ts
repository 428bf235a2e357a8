/**
 * The exit benchmark's guest image (bench/vmm/guest/exits.S): assembled with `as`/`ld` at run time,
 * read back through its multiboot header (the same header QEMU's `-kernel` reads), and patched with N.
 * The image and its layout are described in the assembly source.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { packagePath } from '../../util/package-root';

export const MULTIBOOT_MAGIC = 0x1badb002;
/** Header flag 16: the header carries load and entry addresses (flat image, the "a.out kludge"). */
export const MULTIBOOT_AOUT_KLUDGE = 1 << 16;
/** Value the bootloader leaves in EAX for a multiboot kernel. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The done port (QEMU: isa-debug-exit there) and the byte the guest writes to it. */
export const DONE_PORT = 0xf4;
export const DONE_VALUE = 0x21;
/** isa-debug-exit's exit status for DONE_VALUE: (value << 1) | 1. */
export const QEMU_DONE_STATUS = (DONE_VALUE << 1) | 1;

const PARAMS_OFFSET = 0x20;
const PARAMS_MAGIC = 'BHEX';
const COUNT_OFFSET = 0x24;
const PORT_OFFSET = 0x28;

export interface MultibootHeader {
  /** Offset of the header in the file. */
  offset: number;
  flags: number;
  headerAddr: number;
  loadAddr: number;
  /** 0 means the whole file. */
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

/** The assembly source and linker script, in the package's bench/vmm/guest. */
export function guestSourceDir(): string {
  return packagePath('bench', 'vmm', 'guest');
}

/** Assembles and links the guest into `workDir`; returns the flat image's bytes. */
export function buildExitGuest(workDir: string): Buffer {
  const src = guestSourceDir();
  const obj = path.join(workDir, 'exits.o');
  const bin = path.join(workDir, 'exits.bin');
  try {
    execFileSync('as', ['--32', path.join(src, 'exits.S'), '-o', obj], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('ld', ['-m', 'elf_i386', '-T', path.join(src, 'exits.ld'), obj, '-o', bin], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new BulkheadError('BENCH_FAILED', `assembling the exit guest failed (needs binutils: as, ld): ${stderr || (err as Error).message}`);
  }
  const image = fs.readFileSync(bin);
  fs.rmSync(obj, { force: true });
  fs.rmSync(bin, { force: true });
  parseMultiboot(image); // refuse a malformed image now, not in a VMM
  return image;
}

/**
 * The multiboot header as the spec places it: 4-byte aligned within the first 8 KiB, magic + flags +
 * checksum summing to 0 mod 2^32. Only flat images (flag 16) are accepted: that is what we load.
 */
export function parseMultiboot(image: Buffer): MultibootHeader {
  const limit = Math.min(image.length, 8192) - 32;
  for (let off = 0; off <= limit; off += 4) {
    if (image.readUInt32LE(off) !== MULTIBOOT_MAGIC) continue;
    const flags = image.readUInt32LE(off + 4);
    const checksum = image.readUInt32LE(off + 8);
    if (((MULTIBOOT_MAGIC + flags + checksum) >>> 0) !== 0) {
      throw new BulkheadError('BENCH_FAILED', `multiboot header at 0x${off.toString(16)}: bad checksum`);
    }
    if (!(flags & MULTIBOOT_AOUT_KLUDGE)) throw new BulkheadError('BENCH_FAILED', 'multiboot header without load addresses (flag 16)');
    const h: MultibootHeader = {
      offset: off,
      flags,
      headerAddr: image.readUInt32LE(off + 12),
      loadAddr: image.readUInt32LE(off + 16),
      loadEndAddr: image.readUInt32LE(off + 20),
      bssEndAddr: image.readUInt32LE(off + 24),
      entryAddr: image.readUInt32LE(off + 28),
    };
    // The file offset of load_addr is header offset - (header_addr - load_addr).
    if (h.headerAddr - h.loadAddr !== off) throw new BulkheadError('BENCH_FAILED', 'multiboot load_addr does not match the header position');
    const end = h.loadEndAddr === 0 ? h.loadAddr + image.length : h.loadEndAddr;
    if (h.entryAddr < h.loadAddr || h.entryAddr >= end) throw new BulkheadError('BENCH_FAILED', 'multiboot entry outside the loaded image');
    return h;
  }
  throw new BulkheadError('BENCH_FAILED', 'no multiboot header in the first 8 KiB');
}

/** The loop count and port patched into the image. */
export function readParams(image: Buffer): { count: number; port: number } {
  if (image.toString('latin1', PARAMS_OFFSET, PARAMS_OFFSET + 4) !== PARAMS_MAGIC) {
    throw new BulkheadError('BENCH_FAILED', 'exit guest: parameter block not found');
  }
  return { count: image.readUInt32LE(COUNT_OFFSET), port: image.readUInt32LE(PORT_OFFSET) };
}

/** A copy of the image that does `count` port writes. */
export function withCount(image: Buffer, count: number): Buffer {
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) {
    throw new BulkheadError('INVALID_CONFIG', `invalid exit count: ${count}; allowed: an integer 0 .. 2^32-1`);
  }
  readParams(image);
  const copy = Buffer.from(image);
  copy.writeUInt32LE(count, COUNT_OFFSET);
  return copy;
}
