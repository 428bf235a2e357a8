// The zone suite for real, twice: Zone.create with the default backend (on this machine: the
// emulated host, a `bulkhead serve` inside reached through connect()), then again through
// connect() to a `bulkhead serve` started here, with the same results. Plus a multi-layer OCI
// layout built with umoci (whiteouts, an opaque dir, hard links, setuid, Env/WorkingDir/User)
// booted as a zone. Skips only when this machine lacks QEMU (and so has no backend at all).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '../../src/server/client';
import { Zone } from '../../src/zone/zone';
import { emulatedHostMissing } from '../support/emulated-host';
import { configuredLayout } from '../support/images';
import { runZoneSuite } from '../support/zone-suite';

t.setTimeout(90 * 60_000);

const crash = async (zone: Zone) => {
  // The guest kernel panics (sysrq 'c'); the exec itself dies with the zone. A zone reached through a
  // server learns of it from the server's events, so wait (bounded) until it has.
  await zone.exec(['sh', '-c', 'echo c > /proc/sysrq-trigger']).catch(() => undefined);
  await Promise.race([zone.wait(), new Promise((r) => setTimeout(r, 30_000))]);
};

const missing = emulatedHostMissing();
if (missing) t.pass(`skipped: ${missing}`, { skip: missing });
else {
  const image = configuredLayout(t.testdir());
  const configuredImage = { image: image.layout, env: image.env, cwd: image.cwd, uid: image.uid };

  t.test('a multi-layer OCI layout boots as a zone, its layers applied in order', async (t) => {
    await using zone = await Zone.create({ image: image.layout, keepAlive: true });
    const r = await zone.exec(['sh', '-c', 'echo $(ls /data); echo $(ls /data/opaque); cat /data/hardlink; stat -c "%i %h" /data/original /data/hardlink; stat -c "%a %u" /srv/tool'], { user: '0' });
    const [top, opaque, linked, ino1, ino2, tool] = r.stdout.trim().split('\n');
    t.equal(r.exitCode, 0, r.stderr);
    t.same(top!.split(/\s+/).sort(), ['hardlink', 'opaque', 'original'], 'the whiteout removed /data/gone');
    t.equal(opaque, 'new', 'the opaque directory hides the lower layer');
    t.equal(linked, 'linked');
    t.equal(ino1, ino2, 'the hard link is one inode with two links');
    t.match(ino1, / 2$/);
    t.equal(tool, '4755 4321', 'setuid bit and owner kept');
  });

  t.test('through Zone.create', async (t) => {
    runZoneSuite(t, (spec) => Zone.create(spec), { list: () => Zone.list(), lifetimeMs: 60_000, crash, configuredImage });
  });

  t.test('again through connect() to bulkhead serve', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bh-serve-')); // a Unix socket path must stay short
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const socket = path.join(dir, 'serve.sock');
    const main = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
    const serve = spawn(process.execPath, [main, 'serve', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    serve.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    t.teardown(async () => {
      serve.kill('SIGTERM');
      await new Promise((r) => serve.once('close', r));
    });
    let client: Awaited<ReturnType<typeof connect>> | undefined;
    for (let i = 0; i < 100 && !client; i++) {
      client = await connect(socket).catch(() => undefined);
      if (!client) await new Promise((r) => setTimeout(r, 200));
    }
    if (!client) throw new Error(`bulkhead serve did not answer: ${log}`);
    const c = client;
    runZoneSuite(t, (spec) => c.create(spec), { list: () => c.list(), lifetimeMs: 60_000, crash, configuredImage });
  });
}
