// The small parsers of untrusted or user text: image references, WWW-Authenticate challenges,
// platforms, and manifests/configs that are not what they claim.
import t from 'tap';
import { canonicalName, familiarName, parsePlatform, parseReference } from '../../src/image';
import { parseImageConfig, parseManifestDocument, selectPlatform } from '../../src/image/manifest';
import { isLoopbackRegistry, registryHost } from '../../src/image/reference';
import { parseChallenge } from '../../src/image/registry-auth';

const D = `sha256:${'ab'.repeat(32)}`;

t.test('references', async (t) => {
  const cases: [string, string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['team/app', 'docker.io/team/app:latest', 'team/app:latest'],
    ['localhost:5000/foo:tag', 'localhost:5000/foo:tag', 'localhost:5000/foo:tag'],
    ['localhost/foo', 'localhost/foo:latest', 'localhost/foo:latest'],
    ['127.0.0.1:5000/a/b/c:v1.2-rc_3', '127.0.0.1:5000/a/b/c:v1.2-rc_3', '127.0.0.1:5000/a/b/c:v1.2-rc_3'],
    [`name@${D}`, `docker.io/library/name@${D}`, `name@${D}`],
    [`reg.example.com/x:tag@${D}`, `reg.example.com/x:tag@${D}`, `reg.example.com/x:tag@${D}`],
    ['[::1]:5000/x', '[::1]:5000/x:latest', '[::1]:5000/x:latest'],
    ['index.docker.io/library/alpine', 'docker.io/library/alpine:latest', 'alpine:latest'],
    ['my_app__x.y-z', 'docker.io/library/my_app__x.y-z:latest', 'my_app__x.y-z:latest'],
  ];
  for (const [input, canonical, familiar] of cases) {
    const ref = parseReference(input);
    t.equal(canonicalName(ref), canonical, input);
    t.equal(familiarName(canonicalName(ref)), familiar, `${input} short form`);
  }
  t.equal(parseReference(`x@${D}`).tag, undefined, 'a digest reference has no default tag');
  t.equal(registryHost(parseReference('alpine')), 'registry-1.docker.io');
  t.equal(registryHost(parseReference('localhost:5000/x')), 'localhost:5000');
  t.ok(isLoopbackRegistry('127.0.0.1:5000') && isLoopbackRegistry('localhost') && isLoopbackRegistry('[::1]:80'));
  t.notOk(isLoopbackRegistry('127.0.0.1.example.com') || isLoopbackRegistry('registry.example.com:5000'));

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['UPPER', /upper-case/],
    ['a//b', /component "" is empty/],
    ['x:', /the tag ""/],
    ['x:-bad', /tag "-bad"/],
    [`x:${'t'.repeat(129)}`, /tag/],
    ['x@sha256:abc', /digest "sha256:abc"/],
    ['x@md5:00', /digest/],
    ['host:99999/x', /port 99999/],
    ['ex ample/x', /host|component/],
    ['a/b..c', /component "b\.\.c"/],
    [`${'a'.repeat(300)}`, /longer than 255/],
  ];
  for (const [input, why] of bad) {
    t.throws(() => parseReference(input), { code: 'IMAGE_REFERENCE_INVALID', message: why }, JSON.stringify(input.slice(0, 40)));
  }
  t.throws(() => parseReference('Bad'), { message: /allowed: \[HOST\[:PORT\]\/\]NAME\[:TAG\]\[@sha256:HEX\]/ }, 'the message says what is allowed');
});

t.test('WWW-Authenticate challenges', async (t) => {
  t.same(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull' },
  });
  t.same(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  t.same(parseChallenge('Basic realm="x", Bearer realm="https://t/token", service=reg'), { scheme: 'bearer', params: { realm: 'https://t/token', service: 'reg' } }, 'Bearer is preferred when both are offered');
  t.same(parseChallenge('Bearer realm="a \\"quoted\\" realm",scope="repository:x:pull,push"'), { scheme: 'bearer', params: { realm: 'a "quoted" realm', scope: 'repository:x:pull,push' } });
  t.equal(parseChallenge(null), undefined);
  t.equal(parseChallenge('Negotiate'), undefined, 'a scheme we do not speak');
  t.equal(parseChallenge('=,=,"'), undefined, 'garbage');
});

t.test('platforms', async (t) => {
  t.same(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  t.same(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' }, 'v8 is what arm64 means');
  t.same(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  t.throws(() => parsePlatform('amd64'), { code: 'INVALID_CONFIG', message: /OS\/ARCH/ });
  t.throws(() => parsePlatform('Linux/AMD64'), { code: 'INVALID_CONFIG' });
  const index = {
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D, size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D.replace('ab', 'cd'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D.replace('ab', 'ef'), size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
    ],
  };
  t.equal(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x').digest, D.replace('ab', 'cd'));
  t.throws(() => selectPlatform(index, { os: 'linux', architecture: 'amd64' }, 'x'), { code: 'IMAGE_PLATFORM_UNAVAILABLE', message: /linux\/arm\/v6, linux\/arm\/v7, unknown\/unknown/ });
});

t.test('manifests and configs that are not what they claim', async (t) => {
  const doc = (o: unknown) => Buffer.from(JSON.stringify(o));
  t.throws(() => parseManifestDocument(doc({ schemaVersion: 1, name: 'x' }), 'm'), { code: 'IMAGE_MEDIA_TYPE_UNSUPPORTED', message: /schema 1/ });
  t.throws(() => parseManifestDocument(Buffer.from('{not json'), 'm'), { code: 'IMAGE_INVALID', message: /not JSON/ });
  t.throws(() => parseManifestDocument(doc({ schemaVersion: 2, mediaType: 'application/vnd.example+json' }), 'm'), { code: 'IMAGE_MEDIA_TYPE_UNSUPPORTED' });
  const manifest = (config: unknown, layers: unknown) => doc({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers });
  const cfg = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 10 };
  t.equal(parseManifestDocument(manifest(cfg, []), 'm').kind, 'manifest');
  t.throws(() => parseManifestDocument(manifest({ ...cfg, digest: 'sha256:../../etc/passwd' }, []), 'm'), { code: 'IMAGE_INVALID', message: /m\.config\.digest/ });
  t.throws(() => parseManifestDocument(manifest({ ...cfg, size: -1 }, []), 'm'), { code: 'IMAGE_INVALID', message: /m\.config\.size/ });
  t.throws(() => parseManifestDocument(manifest({ ...cfg, mediaType: 'application/vnd.example.config' }, []), 'm'), { code: 'IMAGE_MEDIA_TYPE_UNSUPPORTED' });
  t.throws(() => parseManifestDocument(manifest(cfg, [{ mediaType: 'x', digest: D }]), 'm'), { code: 'IMAGE_INVALID', message: /m\.layers\[0\]\.size/ });
  t.throws(() => parseManifestDocument(Buffer.alloc(5 * 1024 * 1024, 0x20), 'm'), { code: 'IMAGE_INVALID', message: /more than the 4194304 allowed/ });
  t.same(
    parseImageConfig(doc({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/e'], Cmd: null, ExposedPorts: { '80/tcp': {} }, StopSignal: 'SIGINT' }, rootfs: { type: 'layers', diff_ids: [D] } }), 'c').config,
    { entrypoint: ['/e'], cmd: [], env: [], workingDir: '', user: '', labels: {}, stopSignal: 'SIGINT', exposedPorts: ['80/tcp'], volumes: [] },
    "Docker's defaults filled in",
  );
  t.throws(() => parseImageConfig(doc({ architecture: 'amd64', os: 'linux', config: { Env: 'PATH=/bin' }, rootfs: { type: 'layers', diff_ids: [] } }), 'c'), { code: 'IMAGE_INVALID', message: /c\.config\.Env/ });
  t.throws(() => parseImageConfig(doc({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['nope'] } }), 'c'), { code: 'IMAGE_INVALID', message: /diff_ids\[0\]/ });
});
