// Layers and layouts as an attacker would write them. Each is refused with a typed error that
// names the layer and entry, nothing is written outside the staging dir, and the store is left
// with no image, no work dir and no lock.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { importImage, ImageStore, type ImageLimits } from '../../src/image';
import { sha256hex, tarOf, withClaimedSize, withTypeflag, writeLayout, type HandImage, type TarEntrySpec } from './fixtures/layout';
import { openErofs } from './fixtures/tree';

const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-hostile-outside-'));
t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));

function storeIsClean(t: Test, store: ImageStore): void {
  const list = (sub: string) => (fs.existsSync(path.join(store.root, sub)) ? fs.readdirSync(path.join(store.root, sub)) : []);
  t.same(list('sha256'), [], 'no image in the store');
  t.same(list('tmp'), [], 'no work dir left');
  t.same(list('locks'), [], 'no lock left');
  t.same(fs.readdirSync(outside), [], 'nothing written outside');
}

async function attempt(t: Test, layers: HandImage['layers'], expected: { code: string; message?: RegExp }, limits?: Partial<ImageLimits>): Promise<void> {
  const dir = t.testdir();
  writeLayout(path.join(dir, 'layout'), { layers });
  const store = new ImageStore(path.join(dir, 'store'));
  await t.rejects(importImage(path.join(dir, 'layout'), { store, limits }), expected);
  storeIsClean(t, store);
}

const layer = async (entries: TarEntrySpec[], compression: 'gzip' | 'none' = 'gzip') => ({ tar: await tarOf(entries), compression });

t.test('path traversal in a name', async (t) => {
  const escape = path.relative('/', outside);
  await attempt(t, [await layer([{ name: `../../../../../../../../${escape}/pwned`, content: 'x' }])], {
    code: 'IMAGE_LAYER_HOSTILE',
    message: /rejected at entry .*pwned.*contains "\.\."/,
  });
  await attempt(t, [await layer([{ name: 'ok/../../x', content: 'x' }])], { code: 'IMAGE_LAYER_HOSTILE' });
});

t.test('a symlink that climbs out of the root, used as a parent', async (t) => {
  await attempt(t, [await layer([{ name: 'esc', type: 'symlink', linkname: '../../../../../../../../..' + outside }]), await layer([{ name: 'esc/pwned', content: 'x' }])], {
    code: 'IMAGE_LAYER_HOSTILE',
    message: /esc\/pwned.*climbs above the root/,
  });
});

t.test('an absolute symlink as a parent stays inside the image', async (t) => {
  const dir = t.testdir();
  writeLayout(path.join(dir, 'layout'), {
    layers: [await layer([{ name: 'host', type: 'symlink', linkname: outside }]), await layer([{ name: 'host/pwned', content: 'contained' }])],
  });
  const image = await importImage(path.join(dir, 'layout'), { store: new ImageStore(path.join(dir, 'store')) });
  t.same(fs.readdirSync(outside), [], 'the host directory the link names is untouched');
  const root = openErofs(t, image.erofsPath);
  t.equal(fs.readFileSync(path.join(root, outside, 'pwned'), 'utf8'), 'contained', 'the file landed at that path inside the image');
});

t.test('hard links that reach out', async (t) => {
  await attempt(t, [await layer([{ name: 'stolen', type: 'link', linkname: '../../../../etc/passwd' }])], { code: 'IMAGE_LAYER_HOSTILE', message: /hard link target contains "\.\."/ });
  // Through a symlink to /etc: resolved inside the image, where there is no shadow file.
  await attempt(t, [await layer([{ name: 'etcl', type: 'symlink', linkname: '/etc' }, { name: 'stolen', type: 'link', linkname: 'etcl/shadow' }])], {
    code: 'IMAGE_LAYER_HOSTILE',
    message: /hard link to "etcl\/shadow", which does not exist/,
  });
  await attempt(t, [await layer([{ name: 'd/', type: 'directory' }, { name: 'dirlink', type: 'link', linkname: 'd' }])], { code: 'IMAGE_LAYER_HOSTILE', message: /hard link to the directory/ });
});

t.test('a symlink loop as a parent', async (t) => {
  await attempt(t, [await layer([{ name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'a/x', content: 'x' }])], {
    code: 'IMAGE_LAYER_HOSTILE',
    message: /more than 40 symlinks/,
  });
});

t.test('absurd sizes and counts', async (t) => {
  const lie = withClaimedSize(await tarOf([{ name: 'huge', content: 'x' }]), 0, 2n ** 40n);
  await attempt(t, [{ tar: lie, compression: 'none' }], { code: 'IMAGE_LAYER_HOSTILE', message: /huge.*a file of 1099511627776 bytes/ });

  const bomb = await tarOf([{ name: 'zeros', content: Buffer.alloc(16 * 1024 * 1024) }]);
  const limit = { maxUnpackedBytes: 2 * 1024 * 1024 };
  await attempt(t, [{ tar: bomb, compression: 'gzip' }], { code: 'IMAGE_LAYER_HOSTILE', message: /a file of 16777216 bytes.*maxUnpackedBytes limit \(2097152\)/ }, limit);
  // No one file too large, but more bytes of tar than the limit: stopped by the count of the stream itself.
  const headers = await tarOf(Array.from({ length: 6_000 }, (_, i) => ({ name: `f${i}` })));
  await attempt(t, [{ tar: headers, compression: 'gzip' }], { code: 'IMAGE_LAYER_HOSTILE', message: /unpacks to more than 2097152 bytes \(the maxUnpackedBytes limit\)/ }, limit);

  const many = await tarOf(Array.from({ length: 300 }, (_, i) => ({ name: `f${i}`, content: '' })));
  await attempt(t, [{ tar: many, compression: 'gzip' }], { code: 'IMAGE_LAYER_HOSTILE', message: /more than 100 entries/ }, { maxEntriesPerLayer: 100 });

  await attempt(t, [await layer([{ name: `${'d'.repeat(200)}/`.repeat(25) + 'f', content: 'x' }])], { code: 'IMAGE_LAYER_HOSTILE', message: /longer than 4096 bytes/ });
});

t.test('what is not a layer', async (t) => {
  await attempt(t, [{ tar: await tarOf([{ name: 'f' }]), compression: 'gzip', mediaType: 'application/vnd.example.not-a-layer' }], {
    code: 'IMAGE_MEDIA_TYPE_UNSUPPORTED',
    message: /application\/vnd\.example\.not-a-layer.*supported: application\/vnd\.oci\.image\.layer\.v1\.tar/,
  });
  await attempt(t, [{ tar: Buffer.from('this is not a tar archive, not even close'.repeat(20)), compression: 'none' }], { code: 'IMAGE_INVALID', message: /not a valid tar/ });
  const sparse = await tarOf([{ name: 'holes', content: 'map', pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '1000000' } } as TarEntrySpec]);
  await attempt(t, [{ tar: sparse, compression: 'gzip' }], { code: 'IMAGE_INVALID', message: /"holes" is a sparse file/ });
  const labelled = withTypeflag(await tarOf([{ name: 'vol', content: '' }]), 0, 'V');
  await attempt(t, [{ tar: labelled, compression: 'gzip' }], { code: 'IMAGE_LAYER_HOSTILE', message: /"vol".*unsupported tar entry type \(unknown typeflag\)/ });
  const garbageGzip = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(600, 0x55)]);
  await attempt(t, [{ tar: garbageGzip, compression: 'none', mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }], { code: 'IMAGE_INVALID', message: /corrupt gzip/ });
});

t.test('a layout whose content does not match its digests', async (t) => {
  const dir = t.testdir();
  const layout = path.join(dir, 'layout');
  const tar = await tarOf([{ name: 'f', content: 'hello' }]);
  const w = writeLayout(layout, { layers: [{ tar, compression: 'gzip' }] });
  const blob = path.join(layout, 'blobs', 'sha256', w.layerDigests[0]!.slice(7));
  const good = fs.readFileSync(blob);
  const bad = Buffer.from(good);
  bad[bad.length - 5]! ^= 0xff;
  fs.writeFileSync(blob, bad);
  const store = new ImageStore(path.join(dir, 'store'));
  await t.rejects(importImage(layout, { store }), { code: 'IMAGE_DIGEST_MISMATCH', expected: w.layerDigests[0], actual: `sha256:${sha256hex(bad)}` });
  storeIsClean(t, store);

  fs.rmSync(blob);
  fs.symlinkSync('/dev/zero', blob);
  await t.rejects(importImage(layout, { store }), { code: 'IMAGE_INVALID', message: /is not a regular file/ });
  storeIsClean(t, store);
});

t.test("a layer that is not what the config's diff_ids say", async (t) => {
  const dir = t.testdir();
  const layout = path.join(dir, 'layout');
  const w = writeLayout(layout, { layers: [{ tar: await tarOf([{ name: 'f', content: 'one' }]), compression: 'gzip' }] });
  // Rewrite the config with another diff_id, and the manifest and index.json to match.
  const blobs = path.join(layout, 'blobs', 'sha256');
  const manifest = JSON.parse(fs.readFileSync(path.join(blobs, w.manifestDigest.slice(7)), 'utf8'));
  const config = JSON.parse(fs.readFileSync(path.join(blobs, w.configDigest.slice(7)), 'utf8'));
  config.rootfs.diff_ids = [`sha256:${'0'.repeat(64)}`];
  const configText = JSON.stringify(config);
  fs.writeFileSync(path.join(blobs, sha256hex(configText)), configText);
  manifest.config = { ...manifest.config, digest: `sha256:${sha256hex(configText)}`, size: configText.length };
  const manifestText = JSON.stringify(manifest);
  fs.writeFileSync(path.join(blobs, sha256hex(manifestText)), manifestText);
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  index.manifests[0] = { ...index.manifests[0], digest: `sha256:${sha256hex(manifestText)}`, size: manifestText.length };
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify(index));
  const store = new ImageStore(path.join(dir, 'store'));
  await t.rejects(importImage(layout, { store }), { code: 'IMAGE_DIGEST_MISMATCH', message: /uncompressed layer 1\/1.*diff_ids/ });
  storeIsClean(t, store);
});
