/**
 * bulkhead/host: what this machine can run (probeHost, behind `bulkhead doctor`), and the emulated
 * virtualization host for machines whose /dev/kvm cannot run zones.
 *
 *   const report = probeHost();                       // report.kvm.mode: 'hardware' | 'pvm' | 'none'
 *   await using host = await EmulatedHost.start();    // QEMU TCG with nested SVM
 *   const { stdout } = await host.run(['uname', '-r']);
 *   await using xen = await startXenHost();          // Xen 4.17 + a PV dom0 under QEMU TCG
 */
export { probeHost, classifyKvmMode, type Finding, type HostReport, type KvmMode, type KvmReport, type ProbeOptions } from './probe';
export {
  EmulatedHost,
  EmulatedHostError,
  OutputLimitError,
  SharedEmulatedHost,
  ensureKeeper,
  liveKeeper,
  stopKeeper,
  type EmulatedHostFailure,
  type EmulatedHostOptions,
  type HostProcess,
  type HostSession,
  type KeeperInfo,
  type KeeperOptions,
  type ProcessEnd,
  type RunOptions,
  type RunResult,
  type SpawnOptions,
} from './emulated';
export { startXenHost, ensureXenTree, XEN_CPU_MODEL, XEN_PACKAGES, type XenHostOptions, type XenTree } from './xen';
