#!/usr/bin/env node
// The Xen benchmark: boots the Xen test host (src/host/xen) once and runs bench/xen/inside.js in its
// dom0: event-channel notify round trip, grant map+unmap cost, and `xl create` vs our createPvDomain → first console line
// of a PV domU (Debian's generic kernel and a busybox initramfs). Medians of --runs (default 5).
//   npm run build && node bench/xen/run.js [--runs N] [--json]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const dist = path.join(root, 'dist', 'cjs');
const { startXenHost, ensureXenTree } = require(path.join(dist, 'host', 'xen'));
const { writeCpio } = require(path.join(dist, 'util', 'cpio.js'));
const { staticBusybox } = require(path.join(dist, 'util', 'busybox.js'));

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 5;
const json = args.includes('--json');

(async () => {
  const tree = await ensureXenTree();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-xen-bench-'));
  const initrd = path.join(dir, 'initramfs.cpio');
  fs.writeFileSync(initrd, writeCpio([
    { name: 'bin', type: 'dir', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: staticBusybox() },
    { name: 'dev', type: 'dir', mode: 0o755 },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
    { name: 'init', type: 'file', mode: 0o755, data: '#!/bin/busybox sh\necho bulkhead-bench-marker\n/bin/busybox sleep 1000\n' },
  ]));
  const host = await startXenHost({ writableDirs: [dir] });
  try {
    const kernel = path.join(tree.root, 'boot', `vmlinuz-${tree.kernelRelease}`);
    const r = await host.runNode([path.join(__dirname, 'inside.js'), dist, kernel, initrd, String(runs)], { timeoutMs: 900_000 });
    if (r.exitCode !== 0) throw new Error(`inside.js failed (${r.exitCode}):\n${r.stderr}`);
    const result = { xenHostBootMs: host.bootMs, ...JSON.parse(r.stdout) };
    if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      process.stdout.write(`Xen test host boot (QEMU start → agent): ${(result.xenHostBootMs / 1000).toFixed(1)} s\n`);
      process.stdout.write(`event-channel notify round trip (loopback, dom0): ${result.evtchnRoundTripUs.median.toFixed(1)} µs median of ${runs}\n`);
      process.stdout.write(`grant map + unmap (1 page, dom0's own grant): ${result.grantMapUnmapUs.median.toFixed(1)} µs median of ${runs}\n`);
      process.stdout.write(`xl create → first console line: ${result.xlCreateToConsoleMs.median.toFixed(0)} ms median of ${runs}\n`);
      process.stdout.write(`ours: ${result.ours}\n`);
    }
  } finally {
    await host.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
