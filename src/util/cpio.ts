/**
 * Uncompressed "newc" cpio archives, the format of a Linux initramfs, written directly: no cpio tool,
 * and no root needed for device nodes such as /dev/console (the kernel creates them while unpacking).
 */

export interface CpioEntry {
  name: string;
  type: 'dir' | 'file' | 'symlink' | 'chardev';
  mode: number;
  data?: Buffer | string;
  /** For chardev: [major, minor]. */
  rdev?: [number, number];
}

const TYPE_BITS = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chardev: 0o020000 } as const;

export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    offset += b.length;
  };
  const pad = () => {
    const n = (4 - (offset % 4)) % 4;
    if (n) push(Buffer.alloc(n));
  };
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const emit = (e: CpioEntry | { name: string; type: 'trailer' }) => {
    const data = 'data' in e && e.data !== undefined ? Buffer.from(e.data) : Buffer.alloc(0);
    const mode = e.type === 'trailer' ? 0 : TYPE_BITS[e.type] | e.mode;
    const rdev = 'rdev' in e && e.rdev ? e.rdev : [0, 0];
    const name = Buffer.from(e.name + '\0');
    const header =
      '070701' +
      [ino++, mode, 0, 0, e.type === 'dir' ? 2 : 1, 0, data.length, 0, 0, rdev[0]!, rdev[1]!, name.length, 0]
        .map(hex)
        .join('');
    push(Buffer.from(header, 'ascii'));
    push(name);
    pad();
    push(data);
    pad();
  };
  for (const e of entries) emit(e);
  emit({ name: 'TRAILER!!!', type: 'trailer' });
  return Buffer.concat(parts);
}

/**
 * The smallest initramfs a static PID 1 needs: /init, /dev/console for its output, and the /proc
 * and /sys mount points. Used for test and benchmark guests.
 */
export function singleInitCpio(init: Buffer): Buffer {
  return writeCpio([
    { name: 'dev', type: 'dir', mode: 0o755 },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
    { name: 'proc', type: 'dir', mode: 0o755 },
    { name: 'sys', type: 'dir', mode: 0o755 },
    { name: 'init', type: 'file', mode: 0o755, data: init },
  ]);
}

