// The emulated host for end-to-end tests: every e2e file asks for it here, and gets the same one.
//
//   const host = await emulatedHost(t);        // undefined: skipped, because this machine lacks QEMU
//   if (!host) return;
//   const dir = host.workdir(t);               // a fresh directory both sides see at once
//   const r = await host.run(['ls', dir]);
//
// Under `npm test` (scripts/test.js sets BULKHEAD_TEST_HOST_DIR) one keeper process owns one host
// for the whole run and every test file connects to it; a file run alone with `npx tap` boots its
// own. Skips are only for what the machine lacks (no qemu-system-x86_64). A kernel that fails to
// build or a host that fails to boot is a failed test, with the reason: this throws.
import tap, { type Test } from 'tap';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import {
  EmulatedHost,
  EmulatedHostError,
  ensureKeeper,
  SharedEmulatedHost,
  sharedHostDir,
  sharedHostOptions,
  type HostProcess,
  type HostSession,
  type RunOptions,
  type RunResult,
  type SpawnOptions,
} from '../../src/host/emulated';
import { findQemu } from '../../src/host/emulated/qemu';
import { buildKernel, cacheRoot, type KernelArtifacts } from '../../src/kernel';

export interface TestHost {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  spawn(argv: readonly string[], opts?: SpawnOptions): HostProcess;
  /** A connection to a Unix socket inside. */
  connect(socketPath: string): Duplex;
  /** This package's CLI inside (dist/cjs/cli/main.js). */
  bulkhead(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** A new directory, visible inside and outside at the same path as soon as it is written; removed after `t`. */
  workdir(t: Test): string;
  readonly kernelRelease: string;
  /** True when this host is shared by the whole test run (a keeper), false when this file booted its own. */
  readonly shared: boolean;
}

/** The run-wide directory scripts/test.js made, or undefined when a file runs on its own. */
export const RUN_DIR = process.env.BULKHEAD_TEST_HOST_DIR;

interface Session {
  host: HostSession;
  exchange: string;
  shared: boolean;
}

let session: Promise<Session> | undefined;

/** The open session, or a new one when the last was lost (its keeper stopped a broken host: health.ts). */
async function liveSession(): Promise<Session> {
  const last = await session?.catch(() => undefined);
  if (last?.host.running) return last;
  session = open();
  return session;
}

/** A run that failed because the host went away (not because the command failed). */
function hostLost(err: unknown): err is EmulatedHostError {
  return err instanceof EmulatedHostError && (err.reason === 'channel-lost' || err.reason === 'exited');
}

/** What this machine lacks for the emulated host, or undefined when it has everything. */
export function emulatedHostMissing(): string | undefined {
  return findQemu() ? undefined : 'this machine has no qemu-system-x86_64 (apt-get install qemu-system-x86)';
}

/** The cached kernel of `flavor`, built if this machine never built it. A build failure throws. */
export function testKernel(flavor: 'zone' | 'host' | 'xen'): Promise<KernelArtifacts> {
  return buildKernel({ config: flavor });
}

export async function emulatedHost(t: Test): Promise<TestHost | undefined> {
  const missing = emulatedHostMissing();
  if (missing) {
    t.pass(`skipped: ${missing}`, { skip: missing });
    return undefined;
  }
  let live = await liveSession();
  // A command the host was lost under (its keeper found it broken, or it ended) runs once more on a
  // fresh host, recorded as a retry; a second loss fails. spawn/connect use the host of the moment.
  const again = async <T>(what: readonly string[], run: (host: HostSession) => Promise<T>): Promise<T> => {
    live = await liveSession();
    try {
      return await run(live.host);
    } catch (err) {
      if (!hostLost(err)) throw err;
      recordRetry(t, `the emulated host was lost under \`${what.join(' ').slice(0, 80)}\`: ${err.message.split('\n')[0]}; ran once more on a fresh host`);
      live = await liveSession();
      return run(live.host);
    }
  };
  return {
    run: (argv, opts) => again(argv, (host) => host.run(argv, opts)),
    spawn: (argv, opts) => live.host.spawn(argv, opts),
    connect: (socketPath) => live.host.connect(socketPath),
    bulkhead: (args, opts) => again(['bulkhead', ...args], (host) => host.bulkhead(args, opts)),
    kernelRelease: live.host.kernelRelease,
    shared: live.shared,
    workdir(test: Test): string {
      const dir = mkdtempSync(path.join(live.exchange, 'w-'));
      test.teardown(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
  };
}

/**
 * A zone the emulated CPU lost (the nested-SVM-under-TCG flake of test/e2e/fixtures/early-boot-death.ts):
 * a triple fault, or a guest hung so its agent stopped answering, with no oops, BUG or panic from its
 * kernel. `why`: the failure or error message; `consoleTail`: the zone console's last lines.
 */
export function zoneLostByTcg(why: string, consoleTail = ''): boolean {
  return /crash: triple-fault|the agent stopped answering/.test(why) && !/Oops|BUG:|Kernel panic/.test(`${why}\n${consoleTail}`);
}

/**
 * Records that a test retried a guest that died in early boot (the nested-SVM-under-TCG flake), so
 * scripts/test.js can print every retry of the run as a warning in its summary.
 */
export function recordRetry(t: Test, what: string): void {
  const line = `${path.basename(t.name || 'test')}: ${what}`;
  t.comment(`WARNING: retried ${line}`);
  if (RUN_DIR) appendFileSync(path.join(RUN_DIR, 'retries.log'), `${line}\n`);
}

async function open(): Promise<Session> {
  const kernel = await testKernel('host');
  if (RUN_DIR) {
    // The same shared host zones use (scripts/test.js points the runtime dir and the shares at the run).
    const exchange = process.env.BULKHEAD_HOST_SHARES!;
    mkdirSync(exchange, { recursive: true });
    const ownerPid = Number(process.env.BULKHEAD_TEST_OWNER) || undefined;
    await ensureKeeper({ dir: sharedHostDir(), ownerPid, host: { ...sharedHostOptions(), kernel: kernel.vmlinux } });
    const host = await SharedEmulatedHost.connect(sharedHostDir());
    tap.teardown(() => host.stop()); // the root test of this file: the keeper keeps the host
    return { host, exchange, shared: true };
  }
  // One exchange for the file, so a host booted after a lost one sees the workdirs already written.
  if (!ownExchange) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bulkhead-e2e-'));
    ownExchange = dir;
    tap.teardown(() => rmSync(dir, { recursive: true, force: true }));
  }
  const host = await EmulatedHost.start({ kernel: kernel.vmlinux, writableDirs: [ownExchange, cacheRoot()] });
  tap.teardown(() => host.stop());
  return { host, exchange: ownExchange, shared: false };
}

let ownExchange: string | undefined;
