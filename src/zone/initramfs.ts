/**
 * A zone's initramfs: the static agent as /init, and the few nodes and mount points the kernel and
 * the agent need before the image's root is mounted. Built once per agent binary, kept in memory.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeCpio } from '../util/cpio';
import { agentBinary } from './agent';

let cached: { key: string; cpio: Buffer } | undefined;

export function zoneInitramfs(agentPath = agentBinary()): Buffer {
  const agent = readFileSync(agentPath);
  const key = createHash('sha256').update(agent).digest('hex');
  if (cached?.key === key) return cached.cpio;
  const cpio = writeCpio([
    { name: 'dev', type: 'dir', mode: 0o755 },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
    { name: 'proc', type: 'dir', mode: 0o755 },
    { name: 'sys', type: 'dir', mode: 0o755 },
    { name: 'run', type: 'dir', mode: 0o755 },
    { name: 'mnt', type: 'dir', mode: 0o755 },
    { name: 'init', type: 'file', mode: 0o755, data: agent },
  ]);
  cached = { key, cpio };
  return cpio;
}
