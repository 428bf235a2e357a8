// The zone behaviours the issue lists, as one suite any way of making zones must pass:
//
//   runZoneSuite(t, (spec) => Zone.create(spec), { list: () => Zone.list(), crash: ... });
//   runZoneSuite(t, (spec) => client.create(spec), { list: () => client.list(), ... });  // through bulkhead serve
//
// THE REAL RUN NEEDS THE BACKEND (src/zone/local.ts, createZone): on this machine inside the
// emulated host. Until then it runs against the ChildProcessZone test double
// (test/server/zone-suite-double.test.ts), which shows the suite itself is right, not that zones are.
//
// Lean by design: one zone serves most assertions; the timeout, abort, crash and image-config
// checks each need a zone of their own.
import type { Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { AbortedError, InvalidConfigError } from '../../src/errors';
import { ZoneClosedError } from '../../src/zone/errors';
import type { ZoneSpec } from '../../src/zone/spec';
import type { ZoneInfo, ZoneState } from '../../src/zone/types';
import type { Zone } from '../../src/zone/zone';
import { recordRetry, zoneLostByTcg } from './emulated-host';

export interface ZoneSuiteOptions {
  /** The zones that exist now (Zone.list, or the client's list): a zone gone from it left nothing behind. */
  list: () => Promise<ZoneInfo[]>;
  /**
   * Makes a running zone die abruptly, as a guest panic or a killed agent does (for local zones:
   * kill the agent or panic the guest; for the test double: its crash()). Without it the
   * "pending calls end" check is not run, and the suite says so.
   */
  crash?: (zone: Zone) => Promise<void> | void;
  /** An image whose config sets Env, WorkingDir and User, and what they are. */
  configuredImage?: { image: string; env: Record<string, string>; cwd: string; uid: number };
  /** spec.timeoutMs for the timeout check: longer than a boot on this machine (default 30 s). */
  lifetimeMs?: number;
  /** How long the no-deadline command runs (default 65 s: past the usual 60 s deadlines). */
  longRunSeconds?: number;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end && !cond(); ) await new Promise((r) => setTimeout(r, 50));
  return cond();
}

async function gone(t: Test, opts: ZoneSuiteOptions, id: string, what: string): Promise<void> {
  let left: ZoneInfo[] = [];
  await until(() => false, 0);
  for (let i = 0; i < 40; i++) {
    left = (await opts.list()).filter((z) => z.id === id);
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.same(left, [], `${what}: nothing left behind (gone from the zone list)`);
}

/**
 * Each subtest fails after this long instead of holding its file's whole budget: a call that never
 * returns is a failure with its name, and the rest of the run goes on. Generous: the slowest subtest
 * takes about 2 min in the emulated host.
 */
const BOUNDED = { timeout: 15 * 60_000 };

/**
 * A zone the emulated CPU lost mid-run: a triple fault with no oops, BUG or panic on its console
 * (the nested-SVM flake of test/e2e/fixtures/early-boot-death.ts; a CI run of 2026-12-03 lost the
 * "one zone" scenario's zone that way, after its agent was up).
 */
function lostByTcg(err: unknown): err is ZoneClosedError {
  return err instanceof ZoneClosedError && zoneLostByTcg(err.exit?.failure ?? '', err.exit?.consoleTail);
}

/** Runs `body`, and once more, as a counted retry, when it ended because its zone was lost by TCG. */
async function retryTcgLoss(t: Test, name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (!lostByTcg(err)) throw err;
    const lastLine = err.exit?.consoleTail?.trim().split('\n').pop() ?? 'no console output';
    recordRetry(t, `${name}: the zone triple-faulted with no oops (nested SVM under TCG): ${err.message} (console's last line: ${lastLine}); ran once more`);
    await body();
  }
}

export function runZoneSuite(t: Test, createZone: (spec: ZoneSpec) => Promise<Zone>, opts: ZoneSuiteOptions): void {
  t.test('bad specs give typed errors naming the field', BOUNDED, async (t) => {
    for (const [spec, field] of [
      [{ image: 'busybox', memoryMiB: 1 }, 'memoryMiB'],
      [{ image: 'busybox', vcpus: 0 }, 'vcpus'],
      [{ image: 'busybox', bogus: true }, 'bogus'],
      [{ image: '' }, 'image'],
      [{ image: 'busybox', env: { 'not a name': 'x' } }, 'env.not a name'],
    ] as const) {
      const err = await createZone(spec as unknown as ZoneSpec).then(
        () => undefined,
        (e: unknown) => e,
      );
      t.type(err, InvalidConfigError, `${field}: InvalidConfigError`);
      t.equal((err as InvalidConfigError | undefined)?.field, field, `names ${field}`);
    }
  });

  const oneZone = async (t: Test) => {
    const zone = await createZone({ image: 'busybox', env: { FROM_SPEC: 'yes' }, cwd: '/tmp', user: '65534:65534', keepAlive: true });
    t.teardown(() => zone.destroy());
    t.equal(zone.state, 'running', 'create resolves once it runs');
    const history: ZoneState[] = [];
    for await (const e of zoneEventsSoFar(zone)) if (e.type === 'state') history.push(e.state);
    t.same(history, ['booting', 'running'], 'events replay creating → booting → running');

    // No default deadline on streams: this runs past a minute while the rest goes on.
    const longRun = zone.exec(['sh', '-c', `sleep ${opts.longRunSeconds ?? 65}; echo still here`]);
    longRun.catch(() => undefined); // awaited below; a zone lost before then must not leave it unhandled

    const hello = await zone.exec(['echo', 'hello']);
    t.match(hello, { stdout: 'hello\n', stderr: '', exitCode: 0, signal: null, timedOut: false }, 'busybox echo');

    t.equal((await zone.exec(['sh', '-c', 'exit 42'])).exitCode, 42, 'an exit code');
    t.match(await zone.exec(['sh', '-c', 'kill -TERM $$']), { exitCode: null, signal: 'SIGTERM' }, 'killed by a signal');
    const sleeper = zone.spawn(['sleep', '600']);
    await sleeper.pid;
    sleeper.kill('SIGKILL');
    t.match(await sleeper.wait(), { exitCode: null, signal: 'SIGKILL' }, 'kill() from the host');

    const data = randomBytes(10 * 1024 * 1024);
    const cat = await zone.exec(['cat'], { stdin: data });
    t.equal(cat.stdoutBytes.length, data.length, '10 MiB through cat');
    t.equal(sha(cat.stdoutBytes), sha(data), 'with a matching checksum');

    const apart = await zone.exec(['sh', '-c', 'echo to-out; echo to-err >&2; echo more-out']);
    t.equal(apart.stdout, 'to-out\nmore-out\n', 'stdout alone');
    t.equal(apart.stderr, 'to-err\n', 'stderr alone');

    const tty = zone.spawn(['sh'], { tty: { cols: 80, rows: 24 } });
    let screen = '';
    tty.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
    tty.stdin.write('stty size; [ -t 0 ] && echo IS-A-TTY\n');
    t.ok(await until(() => /24 80/.test(screen) && /IS-A-TTY/.test(screen), 20_000), 'a tty of 80x24');
    tty.resize(120, 50);
    await new Promise((r) => setTimeout(r, 200));
    tty.stdin.write('stty size\n');
    t.ok(await until(() => /50 120/.test(screen), 20_000), 'resized to 120x50');
    tty.stdin.write('exit 7\n');
    t.match(await tty.wait(), { exitCode: 7 }, 'the tty session ends with its code');

    const many = await Promise.all(Array.from({ length: 16 }, (_, i) => zone.exec(['sh', '-c', `echo n${i}; exit ${i}`])));
    t.ok(many.every((r, i) => r.stdout === `n${i}\n` && r.exitCode === i), '16 concurrent execs, each with its own output and code');

    const ids = await zone.exec(['sh', '-c', 'echo "$FROM_SPEC"; pwd; id -u; id -g']);
    t.equal(ids.stdout, 'yes\n/tmp\n65534\n65534\n', 'env, cwd and user from the spec');
    const over = await zone.exec(['sh', '-c', 'echo "$FROM_SPEC $X"; pwd; id -u'], { env: { X: 'exec' }, cwd: '/', user: '0' });
    t.equal(over.stdout, 'yes exec\n/\n0\n', 'exec options add to and override them');

    const blob = randomBytes(5 * 1024 * 1024);
    await zone.files.write('/tmp/blob.bin', blob);
    t.equal(sha(await zone.files.read('/tmp/blob.bin')), sha(blob), 'a 5 MiB binary file written and read back');
    t.match(await zone.files.stat('/tmp/blob.bin'), { type: 'file', size: blob.length });
    t.equal((await zone.exec(['sha256sum', '/tmp/blob.bin'])).stdout.split(' ')[0], sha(blob), 'the zone reads the same bytes');

    const m = await zone.metrics();
    t.ok(m.guest === undefined || m.guest.memory.totalBytes > 0, 'metrics');

    t.match(await longRun, { exitCode: 0, stdout: 'still here\n' }, `a command of ${opts.longRunSeconds ?? 65} s was not cut`);
    await zone.destroy();
    t.equal(zone.state, 'destroyed');
    await gone(t, opts, zone.id, 'destroy');
  };
  const ONE_ZONE = 'one zone: exec, streams, tty, concurrency, env/cwd/user from the spec, files';
  t.test(ONE_ZONE, BOUNDED, (t) => retryTcgLoss(t, ONE_ZONE, () => oneZone(t)));

  if (opts.configuredImage) {
    const image = opts.configuredImage;
    t.test('env, cwd and user from the image config', BOUNDED, async (t) => {
      const zone = await createZone({ image: image.image, keepAlive: true });
      t.teardown(() => zone.destroy());
      const r = await zone.exec(['sh', '-c', `${Object.keys(image.env).map((k) => `echo "$${k}"`).join('; ')}; pwd; id -u`]);
      t.equal(r.stdout, `${Object.values(image.env).map((v) => `${v}\n`).join('')}${image.cwd}\n${image.uid}\n`);
      const spec = await zone.exec(['id', '-u'], { user: '0' });
      t.equal(spec.stdout, '0\n', 'an exec user overrides the image User');
    });
  } else {
    t.comment('not run: env/cwd/user from an image config (no configuredImage given)');
  }

  t.test('a timeout ends the zone and leaves nothing behind', BOUNDED, async (t) => {
    const lifetime = opts.lifetimeMs ?? 30_000;
    const zone = await createZone({ image: 'busybox', cmd: ['sleep', '3600'], timeoutMs: lifetime });
    const exit = await zone.wait();
    t.equal(exit.reason, 'timeout', 'exit reason timeout');
    await zone.destroy();
    await gone(t, opts, zone.id, 'timeout');
  });

  t.test('an AbortSignal ends the zone and leaves nothing behind', BOUNDED, async (t) => {
    const ac = new AbortController();
    const zone = await createZone({ image: 'busybox', keepAlive: true, signal: ac.signal });
    const pending = zone.exec(['sleep', '600']).then(
      () => undefined,
      (e: unknown) => e,
    );
    ac.abort();
    const exit = await zone.wait();
    t.equal(exit.reason, 'aborted', 'exit reason aborted');
    t.ok(await until(() => zone.state === 'destroyed', 30_000), 'destroyed by the abort');
    t.type(await pending, Error, 'a pending exec rejected');
    await gone(t, opts, zone.id, 'abort');
    const early = new AbortController();
    early.abort();
    const err = await createZone({ image: 'busybox', signal: early.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(err, AbortedError, 'an aborted signal: create rejects with AbortedError');
  });

  if (opts.crash) {
    const crash = opts.crash;
    t.test('a zone that dies: every pending call ends at once with a typed error', BOUNDED, async (t) => {
      const zone = await createZone({ image: 'busybox', keepAlive: true });
      t.teardown(() => zone.destroy());
      // A file write whose data never ends stays pending until the zone dies.
      const endless = new PassThrough();
      endless.write(Buffer.alloc(64 * 1024));
      const calls: Record<string, Promise<unknown>> = {
        exec: zone.exec(['sleep', '600']),
        spawn: zone.spawn(['cat']).wait(),
        file: zone.files.write('/tmp/endless', endless),
      };
      const settled = Object.fromEntries(
        Object.entries(calls).map(([k, p]) => [
          k,
          p.then(
            (v) => ({ ok: v }),
            (e: unknown) => ({ err: e }),
          ),
        ]),
      );
      await new Promise((r) => setTimeout(r, 500));
      const at = Date.now();
      await crash(zone);
      for (const [name, p] of Object.entries(settled)) {
        const r = (await p) as { ok?: unknown; err?: unknown };
        t.type(r.err, ZoneClosedError, `${name}: ZoneClosedError`);
      }
      const took = Date.now() - at;
      t.ok(took < 10_000, `all ended within ${took} ms of the death`);
      t.equal(zone.state, 'failed');
      t.ok(zone.exit?.failure, `with the reason: ${zone.exit?.failure}`);
      t.throws(() => zone.spawn(['true']), ZoneClosedError, 'new calls fail at once');
    });
  } else {
    t.comment('not run: pending calls on a dying zone (no crash() given)');
  }
}

/** The zone's events so far (the replayed history), without waiting for more. */
async function* zoneEventsSoFar(zone: Zone) {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  for await (const e of zone.events({ signal: ac.signal })) yield e;
}
