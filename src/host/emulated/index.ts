/**
 * The emulated virtualization host: QEMU TCG with emulated SVM, our host kernel, the real root over
 * virtio-9p, and a control agent. host.ts owns one; keeper.ts shares one between processes.
 */
export { EmulatedHost, type EmulatedHostOptions, type HostSession } from './host';
export type { HostProcess, ProcessEnd, RunOptions, RunResult, SpawnOptions } from './channel';
export { EmulatedHostError, OutputLimitError, type EmulatedHostFailure } from './errors';
export { ensureKeeper, KEEPER_CONSOLE_LOG, liveKeeper, stopKeeper, type KeeperInfo, type KeeperOptions } from './keeper';
export { SharedEmulatedHost, sharedHostDir, sharedHostOptions, SHARED_HOST_CPUS, SHARED_HOST_MEMORY_MIB } from './shared';
