#!/usr/bin/env node
// `npm test`'s runner: tap over test/, with one emulated host shared by every end-to-end file.
// It makes the run's directory (BULKHEAD_TEST_HOST_DIR), where the first e2e file starts a keeper
// (src/host/emulated/keeper.ts) that the others connect to; after tap it stops that keeper, prints
// every early-boot retry the tests recorded as a warning, and removes the directory. Arguments go
// to tap (e.g. `npm test -- test/e2e`).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-test-run-'));
const env = {
  ...process.env,
  BULKHEAD_TEST_HOST_DIR: runDir,
  BULKHEAD_TEST_OWNER: String(process.pid),
  // Zones and e2e files share one emulated host, which sees the exchange dir live.
  BULKHEAD_RUNTIME_DIR: path.join(runDir, 'runtime'),
  BULKHEAD_HOST_SHARES: path.join(runDir, 'exchange'),
};
fs.mkdirSync(env.BULKHEAD_HOST_SHARES, { recursive: true });
const started = Date.now();
const tap = spawn(process.execPath, [path.join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs'), ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: 'inherit',
});
// A terminal's Ctrl-C reaches tap itself (same process group); just don't die before cleaning up.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => tap.kill(sig));

tap.on('close', async (code, signal) => {
  const keeperLogs = [];
  try {
    const { stopKeeper } = require(path.join(root, 'dist', 'cjs', 'host', 'emulated', 'keeper.js'));
    const runtime = path.join(runDir, 'runtime');
    for (const dir of fs.existsSync(runtime) ? fs.readdirSync(runtime).filter((d) => d.startsWith('host-')) : []) {
      await stopKeeper(path.join(runtime, dir));
      keeperLogs.push(path.join(runtime, dir, 'keeper.log'));
    }
  } catch (err) {
    process.stderr.write(`test: could not stop a shared test host: ${err.message}\n`);
  }
  const retries = fs.existsSync(path.join(runDir, 'retries.log'))
    ? fs.readFileSync(path.join(runDir, 'retries.log'), 'utf8').split('\n').filter(Boolean)
    : [];
  if (retries.length > 0) {
    process.stdout.write(`\n# WARNING: ${retries.length} run(s) lost to the nested-SVM flake (an early-boot death, a triple fault with no oops, or an emulated host found broken) were retried once:\n`);
    for (const r of retries) process.stdout.write(`#   ${r}\n`);
  }
  for (const log of keeperLogs.filter((l) => fs.existsSync(l))) {
    // host-xen is the Xen test host; host-<fingerprint> the emulated KVM host.
    const which = path.basename(path.dirname(log)) === 'host-xen' ? 'Xen test host' : 'emulated host';
    const keeperLog = fs.readFileSync(log, 'utf8').trim().split('\n');
    process.stdout.write(`# shared ${which}: ${keeperLog.at(-1)}\n`);
    // A keeper that stopped a broken host (src/host/emulated/health.ts) before the end: the run went on with a fresh one.
    const verdicts = keeperLog.filter((l) => /^keeper \d+: stopping \((its kernel reported a fault|the emulated host is (unresponsive|broken))/.test(l));
    for (const v of verdicts) process.stdout.write(`# WARNING: the shared ${which} was found broken and replaced: ${v}\n`);
    // What its kernel said about processes it killed or faults it took: the why of a server that died.
    const consoleLog = path.join(path.dirname(log), 'console.log');
    const alarms = fs.existsSync(consoleLog)
      ? fs.readFileSync(consoleLog, 'utf8').split('\n').filter((l) => /Out of memory|oom-kill|Killed process|BUG:|Oops|general protection|segfault|invoked oom-killer|hung_task/.test(l))
      : [];
    if (alarms.length > 0) {
      process.stdout.write(`# WARNING: the shared ${which}'s kernel reported ${alarms.length} kill(s) or fault(s):\n`);
      for (const l of alarms.slice(0, 20)) process.stdout.write(`#   ${l.trim().slice(0, 300)}\n`);
    }
  }
  process.stdout.write(`# test wall time: ${((Date.now() - started) / 60000).toFixed(1)} min\n`);
  fs.rmSync(runDir, { recursive: true, force: true });
  process.exit(code ?? (signal ? 1 : 0));
});
