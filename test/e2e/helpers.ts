// Shared by the e2e tests: find (or, the first time on a machine, build) the kernels, and say
// plainly why a test is skipped when QEMU or a kernel can't be had.
import { buildKernel, type KernelArtifacts } from '../../src/kernel';
import { findQemu } from '../../src/host/emulated/qemu';

export type Need<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The host (or zone) kernel; builds it if this machine has never built it (minutes, with progress). */
export async function kernel(flavor: 'host' | 'zone'): Promise<Need<KernelArtifacts>> {
  try {
    return { ok: true, value: await buildKernel({ config: flavor }) };
  } catch (err) {
    return { ok: false, reason: `no ${flavor} kernel: ${(err as Error).message.split('\n')[0]}` };
  }
}

export function qemu(): Need<string> {
  const q = findQemu();
  return q ? { ok: true, value: q } : { ok: false, reason: 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86)' };
}

/** node flags that let a child process run our .ts files the way tap runs this test. */
export function tsNodeArgs(): string[] {
  return process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a === '--enable-source-maps');
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0): look at its state.
  try {
    const stat = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8') as string;
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

export async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}
