// Pulls from Debian's docker-registry on 127.0.0.1, started here: one instance without auth (skopeo
// pushes into it) and one over the same storage with token auth against our token server. Covers
// tags and digests, a two-platform index, bearer tokens with and without credentials, refusals,
// an unknown image, and a blob corrupted in the registry's storage.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { importImage, ImageStore, pullImage, resolveImage } from '../../src/image';
import { tarOf, writeMultiPlatformLayout } from './fixtures/layout';
import { registryBlobFile, startRegistry, startTokenServer } from './fixtures/registry';
import { diffTrees, openErofs, walk } from './fixtures/tree';
import { buildLayeredLayout } from './fixtures/umoci-image';

const CREDS = { user: 'alice', password: 's3cret' };

t.test('registry pulls', async (t) => {
  const work = t.testdir();
  const storage = path.join(work, 'registry-storage');
  const { layout, tag } = await buildLayeredLayout(work);
  const multi = path.join(work, 'multi');
  const platforms = writeMultiPlatformLayout(multi, [
    { architecture: 'amd64', image: { layers: [{ tar: await tarOf([{ name: 'arch', content: 'amd64\n' }]), compression: 'gzip' }] } },
    { architecture: 'arm64', variant: 'v8', image: { layers: [{ tar: await tarOf([{ name: 'arch', content: 'arm64\n' }]), compression: 'zstd' }] } },
  ]);

  const open = await startRegistry(t, path.join(work, 'registry-open'), storage);
  const push = (src: string, dest: string, all = false): void => {
    execFileSync('skopeo', ['copy', '-q', ...(all ? ['--all'] : []), '--dest-tls-verify=false', src, `docker://${open.host}/${dest}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  push(`oci:${layout}:${tag}`, 'test/layers:1');
  push(`oci:${layout}:${tag}`, 'public/layers:1');
  push(`oci:${multi}:multi`, 'test/multi:1', true);
  const tokens = await startTokenServer(t, path.join(work, 'token'), CREDS);
  const secured = await startRegistry(t, path.join(work, 'registry-token'), storage, tokens);

  const local = await importImage(layout, { store: new ImageStore(path.join(work, 'store-local')), tag });
  const reference = walk(openErofs(t, local.erofsPath));
  const fresh = (name: string) => new ImageStore(path.join(work, `store-${name}`));

  await t.test('anonymous pull by tag, then by digest', async (t) => {
    const store = fresh('anon');
    const phases = new Set<string>();
    const image = await pullImage(`${open.host}/test/layers:1`, { store, onProgress: (e) => phases.add(e.phase) });
    t.equal(image.digest, local.digest, 'the manifest skopeo pushed is the layout manifest');
    t.equal(image.source.kind, 'registry');
    t.same(image.names, [`${open.host}/test/layers:1`]);
    t.same(diffTrees(walk(openErofs(t, image.erofsPath)), reference, { dirMtimes: true }), [], 'the same tree as the local import');
    t.ok(phases.has('download') && phases.has('apply'), `progress: ${[...phases].join(' ')}`);
    t.same(fs.readdirSync(path.join(store.root, 'tmp')), [], 'downloaded blobs are removed');
    const byDigest = await pullImage(`${open.host}/test/layers@${image.digest}`, { store: fresh('digest') });
    t.equal(byDigest.digest, image.digest);
    t.same(byDigest.names, [], 'a digest reference names nothing');
    const resolved = await resolveImage(`${open.host}/test/layers:1`, { store, pull: 'never' });
    t.equal(resolved.digest, image.digest, 'resolveImage finds the pulled image by name without the registry');
  });

  await t.test('an index with two platforms', async (t) => {
    const store = fresh('multi');
    const amd = await pullImage(`${open.host}/test/multi:1`, { store });
    t.equal(amd.digest, platforms.manifests['linux/amd64'], 'linux/amd64 by default');
    t.equal(fs.readFileSync(path.join(openErofs(t, amd.erofsPath), 'arch'), 'utf8'), 'amd64\n');
    const arm = await pullImage(`${open.host}/test/multi:1`, { store, platform: 'linux/arm64' });
    t.equal(arm.digest, platforms.manifests['linux/arm64/v8'], 'linux/arm64 when asked (v8 is the default variant)');
    t.equal(fs.readFileSync(path.join(openErofs(t, arm.erofsPath), 'arch'), 'utf8'), 'arm64\n');
    t.same(arm.platform, { os: 'linux', architecture: 'arm64' });
    await t.rejects(pullImage(`${open.host}/test/multi:1`, { store, platform: 'linux/s390x' }), {
      code: 'IMAGE_PLATFORM_UNAVAILABLE',
      message: /linux\/s390x.*available: linux\/amd64, linux\/arm64/,
    });
  });

  await t.test('bearer tokens from the challenge', async (t) => {
    const withCreds = await pullImage(`${secured.host}/test/layers:1`, { store: fresh('bearer'), auth: { username: CREDS.user, password: CREDS.password } });
    t.equal(withCreds.digest, local.digest, 'pulled with a token got with credentials');
    const asked = tokens.requests.find((r) => r.user === CREDS.user);
    t.same(asked && { service: asked.service, scopes: asked.scopes }, { service: tokens.service, scopes: ['repository:test/layers:pull'] }, 'the token was asked for the service and scope of the challenge');

    const anonymous = await pullImage(`${secured.host}/public/layers:1`, { store: fresh('bearer-anon') });
    t.equal(anonymous.digest, local.digest, 'an anonymous token for a public repository');
    t.ok(tokens.requests.some((r) => r.user === undefined && r.granted), 'the token server gave an anonymous token');

    await t.rejects(pullImage(`${secured.host}/test/layers:1`, { store: fresh('bearer-denied') }), {
      code: 'IMAGE_REGISTRY_ERROR',
      status: 401,
      message: /refused anonymous access/,
    });
    await t.rejects(pullImage(`${secured.host}/test/layers:1`, { store: fresh('bearer-wrong'), auth: { username: CREDS.user, password: 'wrong' } }), {
      code: 'IMAGE_REGISTRY_ERROR',
      status: 401,
      message: /token server refused/,
    });
  });

  await t.test('an unknown image names what was looked for and where', async (t) => {
    await t.rejects(pullImage(`${open.host}/test/nope:1`, { store: fresh('nope') }), {
      code: 'IMAGE_NOT_FOUND',
      message: new RegExp(`test/nope:1.*${open.host.replace(/\./g, '\\.')}/v2/test/nope/manifests/1`),
    });
    await t.rejects(resolveImage(`${open.host}/test/nope:1`, { store: fresh('nope'), pull: 'never' }), { code: 'IMAGE_NOT_FOUND', message: /pulling is off/ });
  });

  await t.test('a blob corrupted in the registry is a digest mismatch, and nothing is kept', async (t) => {
    const record = fresh('anon').record(local.digest)!;
    const layer = record.layers[0]!.digest;
    const file = registryBlobFile(storage, layer);
    const bytes = fs.readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    const store = fresh('corrupt');
    await t.rejects(pullImage(`${open.host}/test/layers:1`, { store }), { code: 'IMAGE_DIGEST_MISMATCH', expected: layer });
    t.equal(store.get(local.digest), undefined, 'no image');
    t.same(fs.readdirSync(path.join(store.root, 'tmp')), [], 'no work dir, no partial blob');
    t.same(fs.readdirSync(path.join(store.root, 'locks')), [], 'no lock');
  });
});
