/** Mounts a run may leave under its own directories, and how they are undone. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' ') ?? '')
    .filter((mp) => mp === dir || mp.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything under `dir`: whatever held it open is gone, and cleanup must not fail here. */
export function unmountUnder(dir: string, log?: (message: string) => void): void {
  for (const mp of mountsUnder(dir)) {
    log?.(`unmounting ${mp}`);
    spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
  }
}
