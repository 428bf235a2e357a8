/**
 * The addon's C and C++ built once with ASan + UBSan, and the KVM-layer test files run against it
 * (on this machine's /dev/kvm), so a memory error in the binding (native/binding) or in the core as
 * the binding drives it fails the suite. The sanitizer runtimes are preloaded into node, which is
 * not instrumented; leak checking is off (node itself does not free everything at exit).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { cacheDir } from '../../src/util/cache';

const root = path.join(__dirname, '..', '..');
const skip = existsSync('/dev/kvm') ? false : 'this machine has no /dev/kvm';
t.setTimeout(30 * 60_000);

/** Hash of binding.gyp and every native source the addon compiles. */
function sourcesKey(): string {
  const hash = createHash('sha256').update(readFileSync(path.join(root, 'binding.gyp')));
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (name === 'out' || name === 'fuzz' || name === 'tests' || name === 'agent') continue;
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(c|cc|h)$/.test(name)) hash.update(p.slice(root.length)).update(readFileSync(p));
    }
  };
  walk(path.join(root, 'native'));
  return hash.digest('hex').slice(0, 16);
}

function buildAsanAddon(): string {
  const dir = cacheDir('addon-asan', sourcesKey());
  const addon = path.join(dir, 'build', 'Release', 'bulkhead.node');
  if (existsSync(addon)) return addon;
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  cpSync(path.join(root, 'binding.gyp'), path.join(work, 'binding.gyp'));
  cpSync(path.join(root, 'native'), path.join(work, 'native'), { recursive: true, filter: (src) => !/\/(out|fuzz)(\/|$)/.test(src) });
  symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'));
  const flags = '-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g';
  // The headers of the node that runs us: npm passes its nodedir setting only to scripts it runs, and
  // without headers node-gyp downloads them (no network here). A distribution's node has them in
  // <prefix>/include/node.
  const prefix = path.dirname(path.dirname(process.execPath));
  const nodedir = process.env.npm_config_nodedir ?? (existsSync(path.join(prefix, 'include', 'node', 'node.h')) ? prefix : undefined);
  const r = spawnSync(path.join(root, 'node_modules', '.bin', 'node-gyp'), ['rebuild', '--jobs', '2', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, CFLAGS: flags, CXXFLAGS: flags, LDFLAGS: '-fsanitize=address,undefined' },
    timeout: 20 * 60_000,
  });
  if (r.status !== 0) throw new Error(`building the ASan addon failed:\n${(r.stderr || r.stdout).slice(-3000)}`);
  rmSync(dir, { recursive: true, force: true });
  cpSync(work, dir, { recursive: true, filter: (src) => !src.includes('node_modules') });
  rmSync(work, { recursive: true, force: true });
  return addon;
}

t.test('the KVM tests pass on the addon built with ASan + UBSan', { skip }, async (t) => {
  const addon = buildAsanAddon();
  t.ok(existsSync(addon), `ASan addon at ${addon}`);
  const runtimes = ['libasan.so', 'libubsan.so'].map((lib) => spawnSync('gcc', ['-print-file-name=' + lib], { encoding: 'utf8' }).stdout.trim());
  const files = ['lifecycle', 'guest-io', 'irq', 'config', 'machine', 'linux-devices'].map((f) => `test/kvm/${f}.test.ts`);
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs'), ...files], {
    cwd: root,
    encoding: 'utf8',
    timeout: 25 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
    env: {
      // A tap of its own (not a child of ours: that would print bare TAP without its summary).
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^_?TAP/i.test(k))),
      BULKHEAD_ADDON: addon,
      LD_PRELOAD: runtimes.join(':'),
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
    },
  });
  const out = r.stdout + r.stderr;
  const summary = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(out);
  t.notMatch(out, /ERROR: AddressSanitizer|runtime error:/, 'no sanitizer report', { tail: out.slice(-4000) });
  t.ok(summary && Number(summary[1]) > 50, `the KVM test files ran on the ASan addon (${summary?.[0] ?? 'no summary'})`, { tail: out.slice(-2000) });
  const loaded = spawnSync(process.execPath, ['-e', "require('./dist/cjs/kvm/native.js').loadNative(); console.log(require('fs').readFileSync('/proc/self/maps', 'utf8').includes(process.env.BULKHEAD_ADDON))"], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, BULKHEAD_ADDON: addon, LD_PRELOAD: runtimes.join(':'), ASAN_OPTIONS: 'detect_leaks=0' },
  });
  t.equal(loaded.stdout.trim(), 'true', 'with BULKHEAD_ADDON set, the ASan build is the addon that loads', { stderr: loaded.stderr });
  t.equal(r.status, 0, 'and passed', { tail: out.slice(-4000) });
});
