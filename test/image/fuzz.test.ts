// A bounded mutation fuzzer for what parses untrusted input on the image path: the layer applier
// (tar headers mutated with their checksums fixed up, so the mutations get past the tar parser)
// and the text parsers (references, auth challenges, manifests). Every input must either apply or
// fail with a typed image error, and nothing may appear outside the staging root.
// BULKHEAD_FUZZ_SEED and BULKHEAD_FUZZ_ITERATIONS reproduce or lengthen a run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { AbortedError } from '../../src/errors';
import { applyLayer } from '../../src/image/apply-layer';
import { ImageError } from '../../src/image/errors';
import { ByteBudget } from '../../src/image/layer-stream';
import { DEFAULT_LIMITS } from '../../src/image/limits';
import { parseImageConfig, parseManifestDocument } from '../../src/image/manifest';
import { parseReference } from '../../src/image/reference';
import { parseChallenge } from '../../src/image/registry-auth';
import { StagingRoot } from '../../src/image/staging-root';
import { tarOf, type TarEntrySpec } from './fixtures/layout';

const CORPUS = path.join(__dirname, 'fixtures', 'corpus');
const SEED = Number(process.env.BULKHEAD_FUZZ_SEED ?? 0x5eed1234);
const ITERATIONS = Number(process.env.BULKHEAD_FUZZ_ITERATIONS ?? 250);

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const SEEDS: TarEntrySpec[][] = [
  [
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', content: 'root:x:0:0::/:/bin/sh\n' },
    { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { name: 'lib/x.so', content: 'x' },
    { name: 'abs', type: 'symlink', linkname: '/etc' },
    { name: 'abs/hosts', content: 'h' },
    { name: 'hl', type: 'link', linkname: 'etc/passwd' },
    { name: 'etc/.wh.passwd' },
    { name: 'etc/.wh..wh..opq' },
  ],
  [
    { name: 'd/', type: 'directory', mode: 0o1777 },
    { name: 'd/f', content: 'data'.repeat(300), mode: 0o4755, uid: 1000, gid: 1000 },
    { name: 'd/fifo', type: 'fifo' },
    { name: 'up', type: 'symlink', linkname: '../../..' },
    { name: `${'n'.repeat(120)}/${'m'.repeat(120)}`, content: 'long name through pax' },
  ],
];

/** Offsets of the 512-byte header blocks of a tar (walking sizes, as a reader would). */
function headerOffsets(tar: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const block = tar.subarray(off, off + 512);
    if (block.every((b) => b === 0)) break;
    out.push(off);
    const size = parseInt(block.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function fixChecksum(tar: Buffer, off: number): void {
  const h = tar.subarray(off, off + 512);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
}

const INTERESTING = ['../', '/', '.wh.', '.wh..wh..opq', '..', '\0', 'a/../b', '//', '.', '0', '1', '2', '3', '5', '6', '7', 'S', 'x', '7777777', '\x80\xff\xff'];

function mutate(seed: Buffer, rnd: () => number): Buffer {
  const tar = Buffer.from(seed);
  const headers = headerOffsets(tar);
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const off = headers[Math.floor(rnd() * headers.length)]!;
    const field = [0, 100, 108, 116, 124, 136, 156, 157, 329, 337, 345][Math.floor(rnd() * 11)]!;
    const at = off + field + Math.floor(rnd() * 8);
    if (rnd() < 0.5) tar[at] = Math.floor(rnd() * 256);
    else tar.write(INTERESTING[Math.floor(rnd() * INTERESTING.length)]!, at, 'latin1');
    if (rnd() < 0.9) fixChecksum(tar, off);
  }
  if (rnd() < 0.1) return tar.subarray(0, Math.floor(rnd() * tar.length));
  return tar;
}

class Hung extends Error {}

async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Hung()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function listAll(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

t.test(`layer applier: ${ITERATIONS} mutated layers (seed ${SEED.toString(16)})`, async (t) => {
  // On tmpfs when there is one: thousands of small files are created and removed.
  const sandbox = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'bulkhead-fuzz-'));
  t.teardown(() => fs.rmSync(sandbox, { recursive: true, force: true }));
  fs.mkdirSync(path.join(sandbox, 'outside'));
  fs.writeFileSync(path.join(sandbox, 'outside', 'sentinel.txt'), 'untouched');
  const outsideBefore = listAll(path.join(sandbox, 'outside'));
  const seeds = await Promise.all(SEEDS.map((s) => tarOf(s)));
  const rnd = prng(SEED);
  const outcomes = new Map<string, number>();
  // Inputs that once broke something come first: fixtures/corpus/*.tar.
  const corpus = fs.readdirSync(CORPUS).sort().map((f) => fs.readFileSync(path.join(CORPUS, f)));
  for (let i = 0; i < corpus.length + ITERATIONS; i++) {
    const input = i < corpus.length ? corpus[i]! : mutate(seeds[i % seeds.length]!, rnd);
    const rootDir = path.join(sandbox, 'root');
    fs.rmSync(rootDir, { recursive: true, force: true });
    fs.mkdirSync(rootDir);
    const state = { root: new StagingRoot(rootDir, 40), limits: { ...DEFAULT_LIMITS, maxUnpackedBytes: 1 << 20 }, dirTimes: new Map(), budget: new ByteBudget(1 << 20) };
    let outcome = "applied";
    try {
      await withDeadline(applyLayer(Readable.from([input]), `fuzz-${i}`, state), 10_000);
    } catch (err) {
      if (err instanceof Hung) {
        t.fail(`iteration ${i}: applyLayer hung; keep the input in fixtures/corpus/`, { input: input.toString('base64') });
        break;
      }
      if (!(err instanceof ImageError) && !(err instanceof AbortedError)) {
        t.fail(`iteration ${i}: untyped ${(err as Error).name}: ${(err as Error).message}`, { input: input.toString('base64') });
        break;
      }
      outcome = (err as ImageError).code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const top = fs.readdirSync(sandbox).sort();
    if (top.join(',') !== 'outside,root' || listAll(path.join(sandbox, 'outside')).join() !== outsideBefore.join()) {
      t.fail(`iteration ${i}: something was written outside the staging root: ${top.join(', ')}`, { input: input.toString('base64') });
      break;
    }
  }
  t.ok(outcomes.size >= 2, `outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  t.pass('no untyped error and nothing outside the root');
});

t.test('text parsers: references, challenges, manifests, configs', async (t) => {
  const rnd = prng(SEED ^ 0xa5a5a5a5);
  const alphabet = 'abcAB09.:/@_-+=" ,\\\0\u00e9sha256:' + 'f'.repeat(10);
  const randomText = (max: number) => Array.from({ length: Math.floor(rnd() * max) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 10 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'b'.repeat(64)}`, size: 3, platform: { os: 'linux', architecture: 'amd64' } }],
  });
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['A=1'], Cmd: ['sh'], Labels: { a: 'b' } }, rootfs: { type: 'layers', diff_ids: [`sha256:${'c'.repeat(64)}`] } });
  const mutateText = (s: string) => {
    const b = Buffer.from(s);
    for (let i = 0; i < 1 + rnd() * 3; i++) b[Math.floor(rnd() * b.length)] = alphabet.charCodeAt(Math.floor(rnd() * alphabet.length)) & 0xff;
    return b;
  };
  let untyped = 0;
  const typed = (fn: () => unknown, what: string) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ImageError || (err as { code?: string }).code === 'INVALID_CONFIG') return;
      untyped++;
      t.fail(`${what}: ${(err as Error).message}`);
    }
  };
  for (let i = 0; i < 2000 && untyped === 0; i++) {
    typed(() => parseReference(randomText(80)), 'parseReference');
    typed(() => parseChallenge(randomText(120)), 'parseChallenge');
    typed(() => parseManifestDocument(mutateText(manifest), 'fuzz manifest'), 'parseManifestDocument');
    typed(() => parseImageConfig(mutateText(config), 'fuzz config'), 'parseImageConfig');
  }
  t.equal(untyped, 0, '8000 inputs, only typed errors');
});
