// The packed package: `npm pack` with prebuilds/ (made by prebuildify), installed into an empty project with
// --ignore-scripts (so nothing compiles there), must load through require() and import() and probe the host.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function expectedMode(): string {
  if (!fs.existsSync('/dev/kvm')) return 'none';
  const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:.*$/m)?.[0] ?? '';
  if (/\b(vmx|svm)\b/.test(flags)) return 'hardware';
  return fs.existsSync('/sys/module/kvm_pvm') ? 'pvm' : 'none';
}

function run(cmd: string, args: string[], cwd: string): string {
  // JOBS=2: the machine is shared; keep the native build to two compilers.
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, JOBS: '2' }, timeout: 600000, stdio: ['ignore', 'pipe', 'pipe'] });
}

t.test('the packed package loads from prebuilds/ via require() and import()', async (t) => {
  t.ok(fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js')), 'dist/ is built (run `npm run build` first)');
  t.ok(fs.existsSync(path.join(root, 'dist', 'esm', 'index.mjs')), 'the ESM facade is built');

  run(npm, ['run', 'build:prebuild'], root);
  const prebuilds = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const built = fs.readdirSync(prebuilds).filter((f) => f.endsWith('.node'));
  t.ok(built.length > 0, `prebuildify produced ${built.join(', ')}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-pack-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', tmp], root)) as {
    filename: string;
    files: { path: string }[];
  }[];
  const tarball = path.join(tmp, packed[0]!.filename);
  const files = packed[0]!.files.map((f) => f.path);
  t.ok(files.some((f) => /^prebuilds\/linux-x64\/.+\.node$/.test(f)), 'prebuilds/ is in the tarball');
  t.ok(files.includes('dist/cjs/index.js') && files.includes('dist/esm/index.mjs'), 'both entry points are in the tarball');
  t.notOk(files.some((f) => f.startsWith('build/')), 'no local build/ directory is shipped');

  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  run(npm, ['install', tarball, '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], app);
  const installed = path.join(app, 'node_modules', 'bulkhead');
  t.notOk(fs.existsSync(path.join(installed, 'build')), 'nothing was compiled at install time');

  const probeJs = `
    const b = { ...require('bulkhead'), ...require('bulkhead/host'), ...require('bulkhead/kvm') };
    const addon = require('node-gyp-build').path(require('path').dirname(require.resolve('bulkhead/package.json')));
    const report = b.probeHost();
    let apiVersion = null;
    if (report.kvm.accessible) { const kvm = b.openHypervisor(); apiVersion = kvm.apiVersion; kvm.close(); }
    console.log(JSON.stringify({ addon, mode: report.kvm.mode, loaded: report.addon.loaded, apiVersion,
      errors: typeof b.BulkheadError, vm: typeof b.createVm }));
  `;
  const cjs = spawnSync(process.execPath, ['-e', probeJs], { cwd: app, encoding: 'utf8', timeout: 60000 });
  t.equal(cjs.status, 0, `require('bulkhead'): ${cjs.stderr}`);
  const out = JSON.parse(cjs.stdout) as { addon: string; mode: string; loaded: boolean; apiVersion: number | null; errors: string; vm: string };
  t.match(out.addon, /node_modules\/bulkhead\/prebuilds\/linux-x64\/.+\.node$/, 'the addon came from prebuilds/');
  t.equal(out.loaded, true);
  t.equal(out.mode, expectedMode(), `probe through the package: kvm.mode ${out.mode}`);
  if (fs.existsSync('/dev/kvm')) t.equal(out.apiVersion, 12, 'opened /dev/kvm through the package');
  t.equal(out.errors, 'function');
  t.equal(out.vm, 'function');

  const esmJs = `
    const b = { ...(await import('bulkhead')), ...(await import('bulkhead/host')), ...(await import('bulkhead/kvm')) };
    const report = b.probeHost();
    let err = null;
    try { b.openHypervisor().createVm({ memoryMiB: 0, vcpus: 1 }); } catch (e) { err = e; }
    console.log(JSON.stringify({ mode: report.kvm.mode, loaded: report.addon.loaded,
      typed: err === null ? 'no error' : err instanceof b.InvalidConfigError ? err.field : String(err) }));
  `;
  const esm = spawnSync(process.execPath, ['--input-type=module', '-e', esmJs], { cwd: app, encoding: 'utf8', timeout: 60000 });
  t.equal(esm.status, 0, `import('bulkhead'): ${esm.stderr}`);
  const esmOut = JSON.parse(esm.stdout) as { mode: string; loaded: boolean; typed: string };
  t.equal(esmOut.mode, expectedMode());
  t.equal(esmOut.loaded, true);
  if (fs.existsSync('/dev/kvm')) t.equal(esmOut.typed, 'memoryMiB', 'typed errors work through the ESM entry');
});

t.test('the public API: each layer under its subpath, internal helpers not exported', async (t) => {
  const load = (sub: string) => require(path.join(root, 'dist', 'cjs', sub, 'index.js')) as Record<string, unknown>;
  const api: Record<string, Record<string, unknown>> = { '.': load('.'), kvm: load('kvm'), host: load('host'), kernel: load('kernel'), image: load('image'), xen: load('xen') };
  t.equal(typeof api['.']!.BulkheadError, 'function', 'bulkhead: the error classes');
  t.equal(typeof api.kvm!.openHypervisor, 'function', 'bulkhead/kvm: openHypervisor');
  t.equal(typeof api.host!.EmulatedHost, 'function', 'bulkhead/host: EmulatedHost');
  t.equal(typeof api.kernel!.buildKernel, 'function', 'bulkhead/kernel: buildKernel');
  t.equal(typeof api.xen!.XenStore, 'function', 'bulkhead/xen: XenStore');
  const internal = ['agentSource', 'qemuArgs', 'writeCpio', 'singleInitCpio', 'parseDotConfig', 'parseFragment', 'renderSvg',
    'interleavedSchedule', 'runBenchmark', 'buildInitramfs', 'findDroppedOptions'];
  for (const [sub, names] of Object.entries(api)) {
    const leaked = internal.filter((n) => n in names);
    t.same(leaked, [], `${sub === '.' ? 'bulkhead' : `bulkhead/${sub}`} exports no internal helper`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  t.same(Object.keys(pkg.exports).sort(), ['.', './host', './image', './kernel', './kvm', './package.json', './xen'], 'the subpaths package.json offers');
});
