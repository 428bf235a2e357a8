/**
 * The emulated host's initramfs: static busybox, /init, the agent script and a small env file.
 */
import { staticBusybox } from '../../util/busybox';
import { writeCpio } from '../../util/cpio';
import { agentSource } from './agent';
import { envFile, INIT_SCRIPT, type InitSettings } from './init-script';

export interface InitramfsOptions extends InitSettings {
  /** A statically linked busybox (Debian: busybox-static). */
  busybox?: string;
}

export function buildInitramfs(opts: InitramfsOptions): Buffer {
  const busybox = staticBusybox(opts.busybox);
  return writeCpio([
    { name: 'bin', type: 'dir', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: busybox },
    { name: 'bin/sh', type: 'symlink', mode: 0o777, data: 'busybox' },
    { name: 'dev', type: 'dir', mode: 0o755 },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
    { name: 'etc', type: 'dir', mode: 0o755 },
    { name: 'etc/bulkhead.env', type: 'file', mode: 0o644, data: envFile(opts) },
    { name: 'init', type: 'file', mode: 0o755, data: INIT_SCRIPT },
    { name: 'agent.js', type: 'file', mode: 0o644, data: agentSource() },
  ]);
}
