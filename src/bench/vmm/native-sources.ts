/**
 * The C files of the native library (what native/Makefile calls LIB_SRCS), relative to native/, for
 * benchmark tools compiled at run time from a checkout or an installed package (which ships native/ but
 * not its Makefile's outputs).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const LIBRARY_DIRS = ['kvm', 'devices', 'devices/virtio', 'boot', 'machine'];

export function nativeLibrarySources(nativeDir: string): string[] {
  return LIBRARY_DIRS.flatMap((sub) => {
    const dir = path.join(nativeDir, sub);
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.c'))
      .sort()
      .map((f) => `${sub}/${f}`);
  });
}
