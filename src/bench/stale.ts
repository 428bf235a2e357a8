/**
 * Leftovers of an earlier run whose harness died without cleaning up (SIGKILL, a crash): each run's
 * temp root holds the harness's PID and the kernel's boot id in owner.pid; a root whose owner is gone
 * is swept at the start of the next run: its dockerd stopped, its other processes killed, its mounts
 * undone. The boot id keeps a harness inside the emulated host (which sees this host's /tmp through
 * 9p) from judging the outer harness dead because its PID does not exist in there.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unmountUnder } from './mounts';
import { isAlive, killProcessesMentioning, processesMentioning, sleep } from '../util/process';
import { dockerCgroups, dockerCgroupsBeforeUnder, removeDockerCgroups } from './runners/dockerd';

export const WORK_ROOT_PREFIX = 'bulkhead-bench-';
export const OWNER_FILE = 'owner.pid';

/** Sweeps stale work roots under `tmpDir`; returns the ones removed. */
export async function sweepStaleRuns(tmpDir: string, log: (message: string) => void = () => undefined): Promise<string[]> {
  const swept: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(tmpDir).filter((e) => e.startsWith(WORK_ROOT_PREFIX));
  } catch {
    return swept;
  }
  for (const entry of entries) {
    const root = path.join(tmpDir, entry);
    const owner = readOwner(root);
    // Not a work root, one from another machine or boot, or its harness still runs.
    if (owner === undefined || owner.bootId !== bootId() || isAlive(owner.pid)) continue;
    log(`sweeping ${root}, left by bench process ${owner.pid} which is gone`);
    const cgroupsBefore = dockerCgroupsBeforeUnder(root);
    const stoppedDockerd = await stopDockerdsUnder(root);
    await killProcessesMentioning(root);
    unmountUnder(root, log);
    // (A zombie still has its comm until init reaps it, which can take seconds here: only live ones count.)
    if (stoppedDockerd && !fs.readdirSync('/proc').some((p) => /^\d+$/.test(p) && commOf(p) === 'dockerd' && isAliveNotZombie(Number(p)))) {
      // No dockerd runs any more: remove the empty `docker` cgroups the dead run's daemon added (those
      // that were there before it started stay); rmdir refuses non-empty ones anyway.
      await removeDockerCgroups(cgroupsBefore ?? new Set(dockerCgroups()));
    }
    try {
      fs.rmSync(root, { recursive: true, force: true });
      swept.push(root);
    } catch (err) {
      log(`could not remove ${root}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return swept;
}

/** The owner.pid contents for this process: "<pid> <boot id>". */
export function ownerRecord(): string {
  return `${process.pid} ${bootId()}\n`;
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

function readOwner(root: string): { pid: number; bootId: string } | undefined {
  try {
    const [pidText, boot] = fs.readFileSync(path.join(root, OWNER_FILE), 'utf8').trim().split(/\s+/);
    const pid = Number(pidText);
    return Number.isInteger(pid) && pid > 0 && boot ? { pid, bootId: boot } : undefined;
  } catch {
    return undefined;
  }
}


function commOf(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** dockerd gets SIGTERM first, so it unmounts and stops its containerd itself. */
async function stopDockerdsUnder(root: string): Promise<boolean> {
  const dockerds = processesMentioning(root).filter((pid) => commOf(String(pid)) === 'dockerd');
  for (const pid of dockerds) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
  for (let i = 0; i < 200 && dockerds.some(isAliveNotZombie); i++) await sleep(100);
  return dockerds.length > 0;
}

function isAliveNotZombie(pid: number): boolean {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}
