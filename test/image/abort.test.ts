// An AbortSignal stops an import while a zstd layer is being applied, while mkfs.erofs runs, and a
// pull in the middle of a blob download; each leaves no image, work dir, memory staging dir, lock,
// partial file or child process behind. Also: two builds of one image at once make it once.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { importImage, ImageStore, pullImage, type ImageProgress } from '../../src/image';
import { processesMentioning } from '../../src/util/process';
import { tarOf, writeLayout } from './fixtures/layout';

function assertNothingLeft(t: Test, store: ImageStore): void {
  const list = (sub: string) => (fs.existsSync(path.join(store.root, sub)) ? fs.readdirSync(path.join(store.root, sub)) : []);
  t.same(list('sha256'), [], 'no image');
  t.same(list('tmp'), [], 'no work dir or partial file');
  t.same(list('locks'), [], 'no lock');
  t.same(fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`bulkhead-image-${process.pid}-`)), [], 'no memory staging dir');
  t.same(processesMentioning(store.root), [], 'no child process (zstd, mkfs.erofs) still running');
}

async function manyFilesLayout(dir: string, compression: 'zstd' | 'gzip', files = 3000): Promise<string> {
  const layout = path.join(dir, 'layout');
  const tar = await tarOf(Array.from({ length: files }, (_, i) => ({ name: `d${i % 30}/f${i}`, content: `file ${i}\n`.repeat(50) })));
  writeLayout(layout, { layers: [{ tar, compression }] });
  return layout;
}

/** Aborts on the first progress event of `phase`, once the loop has turned (so the phase has begun). */
function abortOn(phase: ImageProgress['phase']): { signal: AbortSignal; onProgress: (e: ImageProgress) => void; fired: () => boolean } {
  const controller = new AbortController();
  let fired = false;
  return {
    signal: controller.signal,
    onProgress: (e) => {
      if (e.phase === phase && !fired) {
        fired = true;
        setImmediate(() => controller.abort(new Error(`test abort during ${phase}`)));
      }
    },
    fired: () => fired,
  };
}

t.test('abort while a zstd layer is applied', async (t) => {
  const dir = t.testdir();
  const layout = await manyFilesLayout(dir, 'zstd');
  const store = new ImageStore(path.join(dir, 'store'));
  const a = abortOn('apply');
  await t.rejects(importImage(layout, { store, signal: a.signal, onProgress: a.onProgress }), { code: 'ABORTED' });
  t.ok(a.fired(), 'the abort came during apply');
  assertNothingLeft(t, store);
  t.same(processesMentioning(layout), [], 'zstd is gone');
});

t.test('abort while mkfs.erofs runs, on disk staging', async (t) => {
  const dir = t.testdir();
  const layout = await manyFilesLayout(dir, 'gzip', 1000);
  const store = new ImageStore(path.join(dir, 'store'));
  const controller = new AbortController();
  let sawMkfs = false;
  const onProgress = (e: ImageProgress): void => {
    if (e.phase !== 'mkfs') return;
    // Abort once mkfs.erofs is really running, to see it killed.
    const poll: NodeJS.Timeout = setInterval(() => {
      if (processesMentioning(store.root).length === 0) return;
      sawMkfs = true;
      clearInterval(poll);
      controller.abort(new Error('test abort during mkfs'));
    }, 2);
    t.teardown(() => clearInterval(poll));
  };
  await t.rejects(importImage(layout, { store, staging: 'disk', signal: controller.signal, onProgress }), { code: 'ABORTED' });
  t.ok(sawMkfs, 'mkfs.erofs was running when the abort came');
  assertNothingLeft(t, store);
});

t.test('an already aborted signal does nothing at all', async (t) => {
  const dir = t.testdir();
  const store = new ImageStore(path.join(dir, 'store'));
  await t.rejects(importImage(path.join(dir, 'nowhere'), { store, signal: AbortSignal.abort() }), { code: 'ABORTED' });
  t.notOk(fs.existsSync(store.root), 'the store was not even created');
});

t.test('abort in the middle of a blob download', async (t) => {
  const dir = t.testdir();
  const layoutDir = path.join(dir, 'layout');
  const big = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4096) big.write(`block ${i}`, i); // not all zeros, so gzip keeps it large enough to trickle
  const w = writeLayout(layoutDir, { layers: [{ tar: await tarOf([{ name: 'big', content: big }]), compression: 'none' }] });
  const blob = (digest: string) => fs.readFileSync(path.join(layoutDir, 'blobs', 'sha256', digest.slice(7)));
  let blobRequests = 0;
  // A registry that serves the manifest and config at once and the layer 64 KiB every 20 ms.
  const server = http.createServer((req, res) => {
    const m = /^\/v2\/slow\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
    if (!m) return void res.writeHead(404).end();
    if (m[1] === 'manifests') {
      return void res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }).end(blob(w.manifestDigest));
    }
    const data = blob(m[2]!);
    if (m[2] === w.configDigest) return void res.writeHead(200, { 'Content-Length': data.length }).end(data);
    blobRequests++;
    res.writeHead(200, { 'Content-Length': data.length });
    let off = 0;
    const timer = setInterval(() => {
      if (res.destroyed || off >= data.length) {
        clearInterval(timer);
        return void res.end();
      }
      res.write(data.subarray(off, off + 65536));
      off += 65536;
    }, 20);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  const store = new ImageStore(path.join(dir, 'store'));
  const controller = new AbortController();
  let downloaded = 0;
  const pulling = pullImage(`${host}/slow:1`, {
    store,
    signal: controller.signal,
    onProgress: (e) => {
      if (e.phase === 'download' && (e.bytes ?? 0) > 0) {
        downloaded = e.bytes!;
        controller.abort(new Error('test abort during download'));
      }
    },
  });
  await t.rejects(pulling, { code: 'ABORTED' });
  t.equal(blobRequests, 1);
  t.ok(downloaded > 0 && downloaded < big.length, `stopped after ${downloaded} of ${big.length} bytes`);
  assertNothingLeft(t, store);
});

t.test('two builds of the same image at once build it once', async (t) => {
  const dir = t.testdir();
  const layout = await manyFilesLayout(dir, 'gzip');
  const store = new ImageStore(path.join(dir, 'store'));
  const phases: string[][] = [[], []];
  const [a, b] = await Promise.all([0, 1].map((i) => importImage(layout, { store, onProgress: (e) => phases[i]!.push(e.phase) })));
  t.equal(a!.digest, b!.digest);
  const built = phases.filter((p) => p.includes('mkfs'));
  t.equal(built.length, 1, 'one of them ran mkfs.erofs');
  t.ok(phases.some((p) => p.includes('wait') && !p.includes('mkfs')), 'the other waited for it');
  t.same(fs.readdirSync(path.join(store.root, 'tmp')), []);
  t.same(fs.readdirSync(path.join(store.root, 'locks')), []);
});

t.test('abort while waiting for another process that builds the same image', async (t) => {
  const dir = t.testdir();
  const layout = await manyFilesLayout(dir, 'gzip', 10);
  const store = new ImageStore(path.join(dir, 'store'));
  const digest = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')).manifests[0].digest as string;
  // A live process "holds" the build lock of this digest.
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => void holder.kill('SIGKILL'));
  fs.mkdirSync(path.join(store.root, 'locks'), { recursive: true });
  const lockFile = path.join(store.root, 'locks', `${digest.slice(7)}.lock`);
  fs.writeFileSync(lockFile, `${holder.pid} somehost\n`);
  const controller = new AbortController();
  const waiting = importImage(layout, {
    store,
    signal: controller.signal,
    onProgress: (e) => {
      if (e.phase === 'wait') setTimeout(() => controller.abort(new Error('test abort while waiting')), 50);
    },
  });
  await t.rejects(waiting, { code: 'ABORTED', message: /waiting for the build lock/ });
  t.equal(fs.readFileSync(lockFile, 'utf8'), `${holder.pid} somehost\n`, "the other process's lock is untouched");
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  // The abandoned wait takes the now stale lock and lets it go at once.
  for (let i = 0; i < 50 && fs.existsSync(lockFile); i++) await new Promise((r) => setTimeout(r, 50));
  t.notOk(fs.existsSync(lockFile), 'no lock left once the holder is gone');
  t.same(store.list(), [], 'nothing was built');
});
