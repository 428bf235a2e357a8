// The test guests' initramfs: a static busybox, /dev/console and an /init script (the script's own
// text after the shebang line). One definition for the Xen domU tests.
import { writeFileSync } from 'node:fs';
import { staticBusybox } from '../../src/util/busybox';
import { writeCpio } from '../../src/util/cpio';

export function writeBusyboxInitramfs(file: string, init: string, opts: { shLink?: boolean } = {}): string {
  writeFileSync(
    file,
    writeCpio([
      { name: 'bin', type: 'dir', mode: 0o755 },
      { name: 'bin/busybox', type: 'file', mode: 0o755, data: staticBusybox() },
      ...(opts.shLink ? [{ name: 'bin/sh', type: 'symlink' as const, mode: 0o777, data: 'busybox' }] : []),
      { name: 'dev', type: 'dir', mode: 0o755 },
      { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] as [number, number] },
      { name: 'init', type: 'file', mode: 0o755, data: `#!/bin/busybox sh\n${init}` },
    ]),
  );
  return file;
}
