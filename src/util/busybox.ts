/**
 * The static busybox (Debian's busybox-static) that initramfs images and test guests run. A
 * dynamically linked /bin/busybox (Debian's `busybox` package) cannot run there, so it is refused
 * with the fix, instead of failing later as a guest that never reaches its init.
 */
import { readFileSync } from 'node:fs';
import { BulkheadError } from '../errors';

export const DEFAULT_BUSYBOX = '/bin/busybox';

export function staticBusybox(file = DEFAULT_BUSYBOX): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new BulkheadError('HOST_UNAVAILABLE', `no busybox at ${file}: apt-get install busybox-static`, { cause: err });
  }
  if (!isStaticElf(bytes)) {
    throw new BulkheadError(
      'HOST_UNAVAILABLE',
      `${file} is not a statically linked executable (Debian's dynamic \`busybox\`?): apt-get install busybox-static`,
    );
  }
  return bytes;
}

/** True for a 64-bit little-endian ELF executable without a PT_INTERP program header (no dynamic loader). */
export function isStaticElf(bytes: Buffer): boolean {
  if (bytes.length < 64 || bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) return false;
  const phoff = Number(bytes.readBigUInt64LE(32));
  const phentsize = bytes.readUInt16LE(54);
  const phnum = bytes.readUInt16LE(56);
  if (phentsize < 56 || phoff + phnum * phentsize > bytes.length) return false;
  for (let i = 0; i < phnum; i++) {
    if (bytes.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  }
  return true;
}
