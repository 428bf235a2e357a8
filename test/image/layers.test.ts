// A multi-layer OCI layout made with umoci becomes an erofs image whose tree is what the layers
// say: mounted and compared path by path with umoci's own unpack of the same image, and the hard
// cases checked one by one (whiteouts, opaque dirs, hard links, symlinks, devices, setuid, owners,
// mtimes). Plus zstd and plain layers, and the rebuild-free second import.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { importImage, ImageStore } from '../../src/image';
import { tarOf, writeLayout } from './fixtures/layout';
import { diffTrees, openErofs, walk } from './fixtures/tree';
import { buildLayeredLayout, FIXED_MTIME } from './fixtures/umoci-image';

t.test('a umoci-built three-layer image', async (t) => {
  const work = t.testdir();
  const store = new ImageStore(path.join(work, 'store'));
  const { layout, tag } = await buildLayeredLayout(work);
  const phases: string[] = [];
  const image = await importImage(layout, { store, tag, name: 'example/layers:1', onProgress: (e) => phases.push(e.phase) });

  t.match(image.digest, /^sha256:[a-f0-9]{64}$/);
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  t.equal(image.digest, index.manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === tag).digest, 'keyed by the manifest digest');
  t.equal(image.erofsPath, path.join(store.root, 'sha256', image.digest.slice(7), 'rootfs.erofs'));
  t.equal(image.sizeBytes, fs.statSync(image.erofsPath).size);
  t.equal(image.layers, 3);
  t.same(image.names, ['example/layers:1']);
  t.equal(image.source.kind, 'oci-layout');
  t.same(image.config.cmd, ['/bin/app']);
  t.same(image.config.env, ['APP_MODE=test']);
  t.equal(image.config.workingDir, '/data');
  t.equal(image.config.user, '1000:1000');
  t.equal(image.config.labels['org.example.layer-test'], 'yes');
  t.same(JSON.parse(fs.readFileSync(image.configPath, 'utf8')), image.config, 'config.json beside the erofs');
  t.ok(phases.includes('apply') && phases.includes('mkfs') && phases.at(-1) === 'done', `progress reported: ${[...new Set(phases)].join(' ')}`);

  const root = openErofs(t, image.erofsPath);
  const tree = walk(root);
  const get = (p: string) => {
    const e = tree.get(p);
    if (!e) throw new Error(`${p} is missing from the image`);
    return e;
  };
  const read = (p: string) => fs.readFileSync(path.join(root, p), 'utf8');

  t.test('whiteouts', async (t) => {
    t.notOk(tree.has('gone/file'), '.wh.file removed the lower file');
    t.equal(read('gone/stays'), 'stays\n', 'its sibling stays');
    t.notOk(tree.has('gone-dir'), 'a whited-out dir goes with everything below it');
    t.equal(read('data/layer2.txt'), 'layer 3 rewrote this before whiting it out: stays\n', 'a whiteout hides only lower layers, not its own layer');
    t.notOk([...tree.keys()].some((k) => path.basename(k).startsWith('.wh.')), 'no whiteout markers in the image');
  });

  t.test('opaque directory', async (t) => {
    t.notOk(tree.has('opq/old-file'), 'lower file hidden');
    t.notOk(tree.has('opq/old-sub'), 'lower subdir hidden');
    t.equal(read('opq/new-file'), 'written before the marker, in the same layer: stays\n', 'same-layer entry before the marker stays');
    t.equal(get('opq').mode, 0o750, 'the dir takes the new attributes');
  });

  t.test('replacements', async (t) => {
    t.equal(get('swap-dir-to-file').type, 'file');
    t.equal(read('swap-dir-to-file'), 'now a file\n');
    t.equal(get('swap-dir-to-file').mode, 0o600);
    t.equal(get('swap-file-to-dir').type, 'dir');
    t.equal(read('swap-file-to-dir/child'), 'now a dir\n');
    t.equal(get('etc/passwd').mode, 0o600, 'a mode change in a later layer');
  });

  t.test('links', async (t) => {
    const hello = get('data/hello.txt');
    const hard = get('data/hello-hardlink.txt');
    t.equal(hard.ino, hello.ino, 'a hard link within a layer is one inode');
    t.equal(hello.nlink, 2);
    t.equal(get('data/passwd-hardlink').ino, get('etc/passwd').ino, 'a hard link to a lower layer file');
    t.equal(get('lib').type, 'symlink');
    t.equal(get('lib').link, 'usr/lib');
    t.equal(get('etc/passwd-abs-link').link, '/etc/passwd', 'absolute symlink targets are kept verbatim');
    t.equal(read('usr/lib/libthree.so'), 'written through the lower symlink lib -> usr/lib\n', 'a write through a symlinked parent lands inside the image');
    t.equal(get('lib').type, 'symlink', 'and the symlink stays a symlink');
  });

  t.test('devices, modes, owners, mtimes', async (t) => {
    t.same([get('dev/mynull').type, get('dev/mynull').rdev, get('dev/mynull').mode], ['char', '1:3', 0o666]);
    t.same([get('dev/myblock').type, get('dev/myblock').rdev], ['block', '7:200']);
    t.equal(get('dev/myfifo').type, 'fifo');
    t.equal(get('bin/setuid-tool').mode, 0o4755, 'setuid kept');
    t.same([get('bin/setgid-tool').mode, get('bin/setgid-tool').gid], [0o2755, 50], 'setgid and group kept');
    t.equal(get('tmp').mode, 0o1777, 'sticky bit kept');
    t.same([get('data/hello.txt').uid, get('data/hello.txt').gid, get('data/hello.txt').mode], [1000, 1000, 0o640]);
    t.same([get('data/big-ids').uid, get('data/big-ids').gid], [100000, 100001], 'ids past 65535');
    t.equal(get('data/hello.txt').mtimeS, FIXED_MTIME.getTime() / 1000, 'file mtime kept');
  });

  t.test("the same tree as umoci's own unpack", async (t) => {
    const oracle = path.join(work, 'oracle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:${tag}`, oracle], { stdio: ['ignore', 'ignore', 'pipe'] });
    const expected = walk(path.join(oracle, 'rootfs'));
    t.ok(expected.size >= 30 && tree.size === expected.size, `both trees have the same ${tree.size} paths`);
    t.same(diffTrees(tree, expected, { dirMtimes: true, ignore: (p) => p === '' }), [], 'no differences in type, mode, owner, content, link, device, mtime');
  });

  t.test('a second import finds it in the store', async (t) => {
    const started = Date.now();
    const again = await importImage(layout, { store, tag, onProgress: (e) => phases.push(`again-${e.phase}`) });
    t.equal(again.digest, image.digest);
    t.ok(phases.includes('again-cached'), 'said it was cached');
    t.ok(Date.now() - started < 2000, 'no rebuild');
    t.same(fs.readdirSync(path.join(store.root, 'tmp')), [], 'no work dirs left');
  });
});

t.test('zstd, gzip and plain layers, told by media type and by magic', async (t) => {
  const work = t.testdir();
  const store = new ImageStore(path.join(work, 'store'));
  const layout = path.join(work, 'layout');
  const l1 = await tarOf([{ name: 'a/', type: 'directory' }, { name: 'a/from-zstd', content: 'z'.repeat(100_000) }]);
  const l2 = await tarOf([{ name: 'a/from-plain', content: 'plain' }, { name: 'a/.wh.from-zstd' }]);
  const l3 = await tarOf([{ name: 'a/from-gzip-labelled-plain', content: 'sniffed' }]);
  writeLayout(layout, {
    layers: [
      { tar: l1, compression: 'zstd' },
      { tar: l2, compression: 'none' },
      // The media type says plain, the bytes are gzip: the magic decides.
      { tar: l3, compression: 'gzip', mediaType: 'application/vnd.oci.image.layer.v1.tar' },
    ],
  });
  const image = await importImage(layout, { store });
  const root = openErofs(t, image.erofsPath);
  t.same(fs.readdirSync(path.join(root, 'a')).sort(), ['from-gzip-labelled-plain', 'from-plain']);
  t.equal(fs.readFileSync(path.join(root, 'a/from-gzip-labelled-plain'), 'utf8'), 'sniffed');
  t.same(image.names, [], 'a layout ref name that is only a tag gives no name');
});
