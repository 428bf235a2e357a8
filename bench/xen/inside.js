// Runs inside the Xen test host's dom0 (bench/xen/run.js starts it): event-channel notify round
// trip, grant map+unmap, and `xl create` vs our createPvDomain → the guest's first console line. Prints JSON on stdout.
// Usage: node inside.js <dist/cjs dir> <guest kernel> <guest initramfs> <runs>
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [dist, kernel, initrd, runsArg] = process.argv.slice(2);
const xen = require(path.join(dist, 'xen', 'index.js'));
const runs = Number(runsArg) || 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e3; // µs

async function evtchnRtt() {
  const ch = xen.EventChannel.open();
  const a = ch.bindUnbound(0);
  const b = ch.bindInterdomain(0, a);
  const events = ch.events();
  await events.next(); // the bind's own event
  const samples = [];
  const n = 200;
  for (let r = 0; r < runs; r++) {
    const t0 = now();
    for (let i = 0; i < n; i++) {
      ch.notify(b);
      await events.next();
    }
    samples.push((now() - t0) / n);
  }
  ch.close();
  return samples;
}

function grantMap() {
  const gt = xen.GrantTable.open();
  const page = gt.share(0, 1);
  const samples = [];
  const n = 100;
  for (let r = 0; r < runs; r++) {
    const t0 = now();
    for (let i = 0; i < n; i++) gt.map(0, page.refs).release();
    samples.push((now() - t0) / n);
  }
  gt.close();
  return samples;
}

async function xlCreate() {
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const name = `bench-${process.pid}-${r}`;
    const cfg = `/tmp/${name}.cfg`;
    fs.writeFileSync(cfg, [`name = "${name}"`, 'type = "pv"', `kernel = "${kernel}"`, `ramdisk = "${initrd}"`, 'memory = 128', 'vcpus = 1',
      'extra = "console=hvc0 rdinit=/init loglevel=0 quiet"', ''].join('\n'));
    const log = `/var/log/xen/guest-${name}.log`;
    const t0 = now();
    execFileSync('xl', ['create', '-q', cfg]);
    for (;;) {
      if (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('bulkhead-bench-marker')) break;
      if (now() - t0 > 120e6) throw new Error(`no marker in ${log} after 120 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    samples.push((now() - t0) / 1000); // ms
    execFileSync('xl', ['destroy', name]);
  }
  return samples;
}

// Ours: createPvDomain (libxenguest, no xl/libxl) of the same kernel and initramfs, until the marker
// reaches our console stream.
async function oursCreate() {
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const t0 = now();
    const d = xen.createPvDomain({ kernel, initrd, cmdline: 'console=hvc0 rdinit=/init loglevel=0 quiet', memoryMiB: 128, vcpus: 1, name: `bench-ours-${process.pid}-${r}` });
    let text = '';
    const seen = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no marker on our console after 120 s: ${text.slice(-500)}`)), 120_000);
      d.console.on('data', (c) => {
        text += c.toString('latin1');
        if (text.includes('bulkhead-bench-marker')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    d.unpause();
    try {
      await seen;
      samples.push((now() - t0) / 1000); // ms
    } finally {
      d.destroy();
    }
  }
  return samples;
}

(async () => {
  const evtchn = await evtchnRtt();
  const grant = grantMap();
  const xl = await xlCreate();
  let ours;
  try {
    ours = await oursCreate();
  } catch (e) {
    ours = `failed: ${e.message}`;
  }
  process.stdout.write(JSON.stringify({
    runs,
    evtchnRoundTripUs: { median: median(evtchn), samples: evtchn },
    grantMapUnmapUs: { median: median(grant), samples: grant },
    xlCreateToConsoleMs: { median: median(xl), samples: xl },
    oursCreateToConsoleMs: Array.isArray(ours) ? { median: median(ours), samples: ours } : undefined,
    ours: Array.isArray(ours) ? `${median(ours).toFixed(0)} ms median of ${runs} (createPvDomain → first console line), ${(median(ours) / median(xl)).toFixed(2)}× xl create` : ours,
  }) + '\n');
})().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
