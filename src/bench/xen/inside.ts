/**
 * The Xen benchmark's side inside dom0 of the Xen test host (src/bench/xen/run.ts starts it with
 * `node dist/cjs/bench/xen/inside.js <payload JSON>`; it prints one JSON document on stdout):
 *   - event-channel notify round trip on a loopback channel, µs per round trip;
 *   - grant map + unmap of one page dom0 shares with itself, µs per map+unmap;
 *   - a PV domU booted by `xl create` and by our createPvDomain, same kernel, initramfs, command
 *     line and memory, interleaved round by round (the side that goes first alternates), each split
 *     into its phases, until the init's marker reaches the console.
 * Raw samples only (warm-up rounds flagged); src/bench/xen/report.ts summarizes them.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createPvDomain, EventChannel, findDomain, GrantTable } from '../../xen';
import type { CreateSample, InsidePayload, InsideResult, OpSample, XenSide } from './types';

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function evtchnRoundTrips(p: InsidePayload): Promise<OpSample[]> {
  const ch = EventChannel.open();
  try {
    const a = ch.bindUnbound(0);
    const b = ch.bindInterdomain(0, a);
    const events = ch.events();
    await events.next(); // the bind's own event
    const out: OpSample[] = [];
    for (let r = 0; r < p.warmups + p.runs; r++) {
      const t0 = nowMs();
      for (let i = 0; i < p.evtchnOps; i++) {
        ch.notify(b);
        await events.next();
      }
      out.push({ round: r, warmup: r < p.warmups, us: ((nowMs() - t0) * 1000) / p.evtchnOps });
    }
    return out;
  } finally {
    ch.close();
  }
}

function grantMapUnmap(p: InsidePayload): OpSample[] {
  const gt = GrantTable.open();
  try {
    const page = gt.share(0, 1);
    const out: OpSample[] = [];
    for (let r = 0; r < p.warmups + p.runs; r++) {
      const t0 = nowMs();
      for (let i = 0; i < p.grantOps; i++) gt.map(0, page.refs).release();
      out.push({ round: r, warmup: r < p.warmups, us: ((nowMs() - t0) * 1000) / p.grantOps });
    }
    return out;
  } finally {
    gt.close();
  }
}

interface Timed {
  setupMs: number;
  toMarkerMs: number;
  totalMs: number;
  detectedBy?: 'watch' | 'poll';
}

/**
 * Ours: createPvDomain (the build, paused) → unpause → the marker on our console stream. A failure
 * of the teardown after the marker was seen does not lose the sample: it goes to `errors`.
 */
async function oursOnce(p: InsidePayload, kernel: string, initrd: string, name: string, errors: string[]): Promise<Timed> {
  const t0 = nowMs();
  const d = createPvDomain({ kernel, initrd, cmdline: p.cmdline, memoryMiB: p.memoryMiB, vcpus: 1, name });
  const built = nowMs();
  let text = '';
  let timed: Timed;
  try {
    const seen = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no marker on our console after ${p.timeoutMs} ms: ${text.slice(-500)}`)), p.timeoutMs);
      d.console.on('error', (e: Error) => {
        clearTimeout(timer);
        reject(new Error(`our console stream failed: ${e.message}`));
      });
      d.console.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        if (text.includes(p.marker)) {
          clearTimeout(timer);
          resolve(nowMs());
        }
      });
    });
    const unpausedAt = nowMs();
    d.unpause();
    const markerAt = await seen;
    timed = { setupMs: built - t0, toMarkerMs: markerAt - unpausedAt, totalMs: markerAt - t0 };
  } catch (e) {
    try {
      d.destroy();
    } catch {
      // the measurement's error is the one to report
    }
    throw e;
  }
  const domid = d.domid;
  try {
    d.destroy();
  } catch (e) {
    errors.push(`${name}: destroy after the marker (sample kept): ${(e as Error).message}`);
  }
  for (let i = 0; i < 1000 && findDomain(domid); i++) await sleep(10);
  return timed;
}

/**
 * Waits for `marker` in xenconsoled's log of the guest: fs.watch on the log directory (inotify,
 * no polling of the single emulated CPU the guest shares with dom0), with a slow poll as a fallback
 * in case an event is missed. Resolves with the time it was seen and how.
 */
function watchLog(logPath: string, marker: string, pollMs: number, timeoutMs: number): { seen: Promise<{ at: number; by: 'watch' | 'poll' }>; stop: () => void } {
  let stopped = false;
  let watcher: fs.FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const stop = (): void => {
    stopped = true;
    watcher?.close();
    if (timer) clearInterval(timer);
    if (deadline) clearTimeout(deadline);
  };
  const seen = new Promise<{ at: number; by: 'watch' | 'poll' }>((resolve, reject) => {
    const check = (by: 'watch' | 'poll'): void => {
      if (stopped) return;
      let text: string;
      try {
        text = fs.readFileSync(logPath, 'latin1');
      } catch {
        return; // not created yet
      }
      if (text.includes(marker)) {
        const at = nowMs();
        stop();
        resolve({ at, by });
      }
    };
    watcher = fs.watch(path.dirname(logPath), (_event, file) => {
      if (!file || String(file) === path.basename(logPath)) check('watch');
    });
    timer = setInterval(() => check('poll'), pollMs);
    deadline = setTimeout(() => {
      stop();
      reject(new Error(`no marker in ${logPath} after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  return { seen, stop };
}

/** xl: spawn `xl create` → it returns (domain built and unpaused) → the marker in xenconsoled's log. */
async function xlOnce(p: InsidePayload, kernel: string, initrd: string, name: string, dir: string): Promise<Timed> {
  const cfg = path.join(dir, `${name}.cfg`);
  fs.writeFileSync(cfg, [`name = "${name}"`, 'type = "pv"', `kernel = "${kernel}"`, `ramdisk = "${initrd}"`, `memory = ${p.memoryMiB}`, 'vcpus = 1', `extra = "${p.cmdline}"`, ''].join('\n'));
  const logPath = `/var/log/xen/guest-${name}.log`;
  fs.rmSync(logPath, { force: true });
  const watch = watchLog(logPath, p.marker, p.pollMs, p.timeoutMs);
  const t0 = nowMs();
  try {
    const exitedAt = await new Promise<number>((resolve, reject) => {
      const child = spawn('xl', ['create', '-q', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(nowMs()) : reject(new Error(`xl create exited ${code}: ${err}`))));
    });
    const marker = await watch.seen;
    // The marker can come before xl has returned only if xl lingers after unpausing: then the
    // whole time is "xl create" and the console phase is 0.
    const setupMs = Math.min(exitedAt, marker.at) - t0;
    return { setupMs, toMarkerMs: Math.max(0, marker.at - exitedAt), totalMs: marker.at - t0, detectedBy: marker.by };
  } finally {
    watch.stop();
    watch.seen.catch(() => undefined);
    try {
      execFileSync('xl', ['destroy', name], { stdio: 'ignore' });
    } catch {
      // not created
    }
    fs.rmSync(cfg, { force: true });
  }
}

async function creates(p: InsidePayload, errors: string[]): Promise<CreateSample[]> {
  const out: CreateSample[] = [];
  const dir = fs.mkdtempSync('/tmp/bulkhead-xen-bench-');
  const failures = new Map<string, number>(); // "<kernel>/<side>" → failures; given up after 2
  try {
    for (let round = 0; round < p.warmups + p.runs; round++) {
      for (const k of p.kernels) {
        const order: XenSide[] = round % 2 === 0 ? ['ours', 'xl'] : ['xl', 'ours'];
        for (const [i, side] of order.entries()) {
          if ((failures.get(`${k.label}/${side}`) ?? 0) >= 2) continue;
          const name = `bench-${side}-${process.pid}-${k.label}-${round}`;
          try {
            const t = side === 'ours' ? await oursOnce(p, k.kernel, k.initrd, name, errors) : await xlOnce(p, k.kernel, k.initrd, name, dir);
            out.push({ kernel: k.label, side, round, warmup: round < p.warmups, position: i === 0 ? 1 : 2, ...t });
          } catch (e) {
            failures.set(`${k.label}/${side}`, (failures.get(`${k.label}/${side}`) ?? 0) + 1);
            errors.push(`${k.label}, ${side}, round ${round}: ${(e as Error).message}`);
          }
          await sleep(p.settleMs); // let Xen reclaim the destroyed domain's memory before the next
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

function xlInfo(): Record<string, string> {
  const info: Record<string, string> = {};
  try {
    for (const line of execFileSync('xl', ['info'], { encoding: 'utf8' }).split('\n')) {
      const m = /^(\S+)\s*:\s*(.*)$/.exec(line);
      if (m) info[m[1]!] = m[2]!.trim();
    }
  } catch {
    // reported as missing fields
  }
  return info;
}

export async function runInside(p: InsidePayload): Promise<InsideResult> {
  const info = xlInfo();
  const errors: string[] = [];
  const evtchnUs = await evtchnRoundTrips(p);
  const grantUs = grantMapUnmap(p);
  const create = await creates(p, errors);
  return {
    xen: { version: info['xen_version'] ?? 'unknown', nrCpus: Number(info['nr_cpus']) || 0, dom0Kernel: info['release'] ?? 'unknown' },
    evtchnUs,
    grantUs,
    create,
    errors,
  };
}

if (require.main === module) {
  const payload = JSON.parse(process.argv[2] ?? '{}') as InsidePayload;
  runInside(payload).then(
    (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    (e: Error) => {
      process.stderr.write(`${e.stack}\n`);
      process.exit(1);
    },
  );
}
