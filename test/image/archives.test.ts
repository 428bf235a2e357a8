// Archives made by skopeo from the umoci layout: `docker-archive:` (the `docker save` format:
// manifest.json, config and layer tars) and `oci-archive:` (an OCI layout in a tar), gzipped too.
// Each becomes the same tree as the layout itself; a docker archive's key is stable.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import t from 'tap';
import { importImage, ImageStore } from '../../src/image';
import { diffTrees, openErofs, walk } from './fixtures/tree';
import { buildLayeredLayout } from './fixtures/umoci-image';

t.test('docker-archive and oci-archive from skopeo', async (t) => {
  const work = t.testdir();
  const store = new ImageStore(path.join(work, 'store'));
  const { layout, tag } = await buildLayeredLayout(work);
  const fromLayout = await importImage(layout, { store, tag });
  const reference = walk(openErofs(t, fromLayout.erofsPath));

  const dockerTar = path.join(work, 'docker.tar');
  execFileSync('skopeo', ['copy', '-q', `oci:${layout}:${tag}`, `docker-archive:${dockerTar}:example/saved:2`]);
  const ociTar = path.join(work, 'oci.tar');
  execFileSync('skopeo', ['copy', '-q', `oci:${layout}:${tag}`, `oci-archive:${ociTar}:v1`]);

  await t.test('docker save format', async (t) => {
    const members = execFileSync('tar', ['tf', dockerTar], { encoding: 'utf8' }).split('\n');
    t.ok(members.includes('manifest.json'), 'it is the docker save format');
    const image = await importImage(dockerTar, { store });
    t.equal(image.source.kind, 'docker-archive');
    t.same(image.names, ['example/saved:2'], 'named by its RepoTags');
    t.same(image.config.cmd, ['/bin/app']);
    t.same(diffTrees(walk(openErofs(t, image.erofsPath)), reference, { dirMtimes: true }), [], 'the same tree as from the layout');
    const again = await importImage(dockerTar, { store, name: 'example/renamed' });
    t.equal(again.digest, image.digest, 'the same archive gets the same key');
    t.same(again.names, ['example/renamed:latest', 'example/saved:2']);
  });

  await t.test('oci-archive, and gzipped', async (t) => {
    // skopeo keeps the layout's manifest as it is, so the digest is the layout's: a fresh store
    // makes this import build from the archive instead of finding the layout's image.
    const own = new ImageStore(path.join(work, 'store-oci-archive'));
    const image = await importImage(ociTar, { store: own, tag: 'v1' });
    t.equal(image.source.kind, 'oci-archive');
    t.equal(image.digest, fromLayout.digest, 'the manifest digest survived the archive');
    t.same(diffTrees(walk(openErofs(t, image.erofsPath)), reference, { dirMtimes: true }), [], 'the same tree as from the layout');
    const gz = path.join(work, 'oci.tar.gz');
    fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(ociTar)));
    const fromGz = await importImage(gz, { store: own });
    t.equal(fromGz.digest, image.digest, 'a gzipped archive is the same image');
  });

  t.same(fs.readdirSync(path.join(store.root, 'tmp')), [], 'unpacked archives are removed');
});
