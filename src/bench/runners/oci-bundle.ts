/**
 * OCI bundles for the runtimes driven directly (runc, crun, runsc): a read-only rootfs holding only the
 * static workload, and a config.json in the shape `runc spec` writes, minus the terminal, with the
 * workload's argv. No network namespace setup beyond an empty one: the workloads need no network.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function layOutBundle(bundleDir: string, workloadPath: string): void {
  const rootfs = path.join(bundleDir, 'rootfs');
  for (const dir of ['proc', 'dev', 'sys', 'tmp']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
  fs.copyFileSync(workloadPath, path.join(rootfs, 'workload'));
  fs.chmodSync(path.join(rootfs, 'workload'), 0o755);
}

export function writeBundleConfig(bundleDir: string, args: readonly string[]): void {
  fs.writeFileSync(path.join(bundleDir, 'config.json'), JSON.stringify(ociConfig(['/workload', ...args]), null, 2));
}

/** The default spec of `runc spec` (runtime-spec 1.0.2), non-interactive. */
export function ociConfig(args: readonly string[]): object {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'bench',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
