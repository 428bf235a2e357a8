// Without a loadable native addon: the API throws NATIVE_ADDON_UNAVAILABLE saying why, and the probe and
// `bulkhead doctor` still work and say what to do. Simulated with a copy of dist/ that has no build/ or prebuilds/.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..', '..');

t.test('no addon: typed error from the API, a report with meaning and fix from the probe', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-noaddon-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  fs.copyFileSync(path.join(root, 'package.json'), path.join(tmp, 'package.json'));
  fs.cpSync(path.join(root, 'dist'), path.join(tmp, 'dist'), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(tmp, 'node_modules'));

  const script = `
    const dist = ${JSON.stringify(path.join(tmp, 'dist', 'cjs'))};
    const b = { ...require(dist + '/index.js'), ...require(dist + '/kvm/index.js'), ...require(dist + '/host/index.js') };
    let err;
    try { b.openHypervisor(); } catch (e) { err = e; }
    const report = b.probeHost();
    console.log(JSON.stringify({ code: err && err.code, isBulkhead: err instanceof b.BulkheadError, message: err && err.message,
      addon: report.addon, kvm: { mode: report.kvm.mode, reason: report.kvm.reason, fix: report.kvm.fix } }));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.equal(out.code, 'NATIVE_ADDON_UNAVAILABLE');
  t.equal(out.isBulkhead, true);
  t.match(out.message, /could not be loaded/);
  t.match(out.message, /npm run build:native/, 'the error says how to fix it');
  t.equal(out.addon.loaded, false);
  t.match(out.addon.fix, /build:native|prebuilds/);
  if (fs.existsSync('/dev/kvm')) {
    t.equal(out.kvm.reason, 'addon-unavailable');
    t.match(out.kvm.fix, /build:native/);
  }

  const doctor = spawnSync(process.execPath, [path.join(tmp, 'dist', 'cjs', 'cli', 'main.js'), 'doctor'], {
    encoding: 'utf8',
    timeout: 60000,
  });
  t.equal(doctor.status, 0, `doctor still runs: ${doctor.stderr}`);
  t.match(doctor.stdout, /no addon/);
  t.match(doctor.stdout, /fix: build it with `npm run build:native`/);
});
