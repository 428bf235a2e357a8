/**
 * A lock file, so that two processes never build the same kernel or image into the same directory,
 * or start the same shared host twice. The file is created with O_EXCL and holds the owner's pid; a
 * lock whose owner is dead (crashed, SIGKILLed) is taken over. Single machine only.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from './process';

export interface FileLock {
  readonly path: string;
  release(): void;
}

export interface LockOptions {
  /** Called once when we start waiting for another live process. */
  onWait?: (ownerPid: number) => void;
  pollMs?: number;
}

export async function acquireLock(lockPath: string, opts: LockOptions = {}): Promise<FileLock> {
  let told = false;
  let emptySeen = 0;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, `${process.pid} ${os.hostname()}\n`);
      closeSync(fd);
      let released = false;
      return {
        path: lockPath,
        release() {
          if (released) return;
          released = true;
          try {
            unlinkSync(lockPath);
          } catch {
            // already gone: nothing to do
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const content = readContent(lockPath);
    const owner = parseOwner(content);
    if (owner === undefined && emptySeen++ < 20) {
      await sleep(100); // created but not written yet (or just removed): look again
      continue;
    }
    if (owner === undefined || !isAlive(owner)) {
      // Stale: its owner died without releasing. Remove it unless someone already replaced it, and
      // race again (O_EXCL decides the winner).
      if (content !== undefined && readContent(lockPath) === content) {
        try {
          unlinkSync(lockPath);
        } catch {
          // someone else removed it first
        }
      }
      continue;
    }
    if (!told) {
      told = true;
      opts.onWait?.(owner);
    }
    await sleep(opts.pollMs ?? 1000);
  }
}

function readContent(lockPath: string): string | undefined {
  try {
    return readFileSync(lockPath, 'utf8');
  } catch {
    return undefined;
  }
}

function parseOwner(content: string | undefined): number | undefined {
  if (!content) return undefined;
  const pid = Number.parseInt(content.split(' ')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

