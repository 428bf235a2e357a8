// The Xen test host for the tests that need real Xen: every such file asks for it here and gets the
// same one.
//
//   const host = await xenHost(t);             // undefined: skipped, because this machine lacks QEMU
//   if (!host) return;
//   const r = await host.run(['xl', 'info']);
//
// Under `npm test` (scripts/test.js sets BULKHEAD_TEST_HOST_DIR) one keeper owns one Xen host for the
// whole run, in the run's runtime directory (scripts/test.js stops it at the end); a file run alone
// boots its own. Skips are only for a machine without qemu-system-x86_64: a host that fails to boot
// (or packages that cannot be fetched) is a failed test, with the reason.
import tap, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureKeeper, SharedEmulatedHost, type HostSession } from '../../src/host/emulated';
import { startXenHost } from '../../src/host/xen';
import { runtimeDir } from '../../src/util/runtime-dir';
import { packagePath } from '../../src/util/package-root';
import { emulatedHostMissing, RUN_DIR } from './emulated-host';

export interface XenTestHost {
  readonly session: HostSession;
  /** A new directory, visible inside and outside at the same path; removed after `t`. */
  workdir(t: Test): string;
  /** True when this host is shared by the whole test run (a keeper). */
  readonly shared: boolean;
  /** The directory seen at the same path inside and outside (workdir()s are made in it). */
  readonly exchange: string;
}

/** The keeper directory of the run's Xen host (a `host-` name, so scripts/test.js stops it). */
export function xenKeeperDir(): string {
  return path.join(runtimeDir(), 'host-xen');
}

let opened: Promise<{ session: HostSession; exchange: string; shared: boolean }> | undefined;

export async function xenHost(t: Test): Promise<XenTestHost | undefined> {
  const missing = emulatedHostMissing();
  if (missing) {
    t.pass(`skipped: ${missing}`, { skip: missing });
    return undefined;
  }
  opened ??= open();
  const { session, exchange, shared } = await opened;
  return {
    session,
    shared,
    exchange,
    workdir(test: Test): string {
      const dir = mkdtempSync(path.join(exchange, 'xen-'));
      test.teardown(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
  };
}

async function open(): Promise<{ session: HostSession; exchange: string; shared: boolean }> {
  if (RUN_DIR) {
    const exchange = process.env.BULKHEAD_HOST_SHARES!;
    mkdirSync(exchange, { recursive: true });
    const ownerPid = Number(process.env.BULKHEAD_TEST_OWNER) || undefined;
    await ensureKeeper({ dir: xenKeeperDir(), ownerPid, xen: { writableDirs: [exchange] }, startTimeoutMs: 300_000 });
    const session = await SharedEmulatedHost.connect(xenKeeperDir());
    tap.teardown(() => session.stop());
    return { session, exchange, shared: true };
  }
  const exchange = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-xen-'));
  const session = await startXenHost({ writableDirs: [exchange] });
  tap.teardown(async () => {
    await session.stop();
    rmSync(exchange, { recursive: true, force: true });
  });
  return { session, exchange, shared: false };
}

/**
 * Runs `body` (JavaScript, with `xen` bound to this package's built bulkhead/xen) under node inside
 * dom0 and returns what it returns, through JSON. An exception inside is thrown here with its code.
 */
export async function inDom0<T>(host: XenTestHost, body: string): Promise<T> {
  const script = [
    `const xen = require(${JSON.stringify(packagePath('dist', 'cjs', 'xen', 'index.js'))});`,
    `(async () => { ${body} })().then(`,
    `  (v) => process.stdout.write(JSON.stringify({ ok: true, value: v === undefined ? null : v })),`,
    `  (e) => process.stdout.write(JSON.stringify({ ok: false, name: e.name, code: e.code, message: e.message, missing: e.missing })));`,
  ].join('\n');
  // A node that crashes in dom0 leaves its core in the exchange dir, and the host's gdb puts the
  // backtrace in the error (dom0 runs this host's node and addon over 9p, so the symbols match).
  const corePattern = path.join(host.exchange, 'core.%p');
  const started = Date.now();
  const r = await host.session.run(['sh', '-c', `ulimit -c unlimited; echo '${corePattern}' > /proc/sys/kernel/core_pattern; exec "$0" "$@"`, process.execPath, '-e', script]);
  if (r.signal) throw new Error(`node in dom0 was killed by ${r.signal} after ${r.durationMs} ms:\n${r.stdout}\n${r.stderr}\n${backtraces(host.exchange, started)}`);
  let out: { ok: true; value: T } | { ok: false; name: string; code: string; message: string; missing?: string[] };
  try {
    out = JSON.parse(r.stdout);
  } catch {
    throw new Error(`node in dom0 exited ${r.exitCode}${r.timedOut ? ' (timed out)' : ''} after ${r.durationMs} ms without a result:\n${r.stdout}\n${r.stderr}`);
  }
  if (!out.ok) throw Object.assign(new Error(out.message), { name: out.name, code: out.code, missing: out.missing });
  return out.value;
}

/** gdb's backtrace of every core written since `since` (each core is removed: they are large). */
function backtraces(dir: string, since: number): string {
  const cores = readdirSync(dir).filter((f) => f.startsWith('core.') && statSync(path.join(dir, f)).mtimeMs >= since - 1000);
  if (cores.length === 0) return 'no core was written';
  return cores
    .map((f) => {
      const core = path.join(dir, f);
      const gdb = spawnSync('gdb', ['-batch', '-nx', '-ex', 'info threads', '-ex', 'bt 16', process.execPath, core], { encoding: 'utf8', timeout: 120_000 });
      rmSync(core, { force: true });
      return `${f}:\n${gdb.error ? `gdb: ${gdb.error.message}` : gdb.stdout.split('\n').filter((l) => /^#|^\*|^  \d|signal/.test(l)).slice(0, 60).join('\n')}`;
    })
    .join('\n');
}
