// `bulkhead image import|pull|ls|rm|path`, run as a separate process on a cache dir of its own:
// results on stdout, progress on stderr, one-line errors with non-zero exits.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { tarOf, writeLayout } from './fixtures/layout';

const MAIN = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');

t.test('the image subcommand', async (t) => {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build:ts first`);
  const cache = t.testdir();
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [MAIN, 'image', ...args], { encoding: 'utf8', env: { ...process.env, BULKHEAD_CACHE_DIR: cache }, timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  const busybox = cli('path', 'busybox');
  t.equal(busybox.code, 0, busybox.stderr);
  const erofs = busybox.stdout.trim();
  t.match(erofs, new RegExp(`^${cache}/images/sha256/[a-f0-9]{64}/rootfs\\.erofs$`), 'prints the erofs path, under the cache root');
  t.ok(fs.existsSync(erofs));
  t.match(busybox.stderr, /mkfs\.erofs/, 'progress on stderr');

  const layout = path.join(cache, 'layout');
  writeLayout(layout, { layers: [{ tar: await tarOf([{ name: 'hello', content: 'hi' }]), compression: 'gzip' }] });
  const imported = cli('import', layout, '--name', 'example/hello:1');
  t.equal(imported.code, 0, imported.stderr);
  t.match(imported.stdout, /^sha256:[a-f0-9]{64}\n$/, 'prints the digest');
  const digest = imported.stdout.trim();

  const ls = cli('ls');
  t.equal(ls.code, 0);
  const lines = ls.stdout.trim().split('\n');
  t.match(lines[0], /^NAME\s+DIGEST\s+SIZE\s+SOURCE\s+BUILT$/);
  t.ok(lines.some((l) => l.startsWith('example/hello:1 ') && l.includes(digest.slice(7, 19)) && l.includes('oci-layout')), 'the import is listed');
  t.ok(lines.some((l) => l.startsWith('busybox:latest ') && l.includes('busybox-static')), 'busybox is listed');
  const json = JSON.parse(cli('ls', '--json').stdout);
  t.same(json.map((i: { names: string[] }) => i.names).sort(), [['busybox:latest'], ['example/hello:1']]);

  const rm = cli('rm', 'example/hello:1');
  t.equal(rm.code, 0, rm.stderr);
  t.equal(rm.stdout, `untagged: example/hello:1\ndeleted: ${digest}\n`);

  const missing = cli('rm', 'example/hello:1');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^bulkhead: no image "example\/hello:1"; looked in .*refs\.json \[IMAGE_NOT_FOUND\]\n$/, 'a one-line error naming what and where');
  const badRef = cli('pull', 'Not/Valid');
  t.equal(badRef.code, 1);
  t.match(badRef.stderr, /^bulkhead: invalid image reference "Not\/Valid".*\[IMAGE_REFERENCE_INVALID\]\n$/);
  const noPath = cli('import', path.join(cache, 'nothing-here'));
  t.equal(noPath.code, 1);
  t.match(noPath.stderr, /no image ".*nothing-here".*no such file or directory \[IMAGE_NOT_FOUND\]/);
  const usage = cli('import');
  t.equal(usage.code, 2);
  t.match(usage.stderr, /missing argument: PATH\n\nusage: bulkhead image import/);
  t.equal(cli('frobnicate').code, 2);
  t.equal(cli('--help').code, 0);
});
