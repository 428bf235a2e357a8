/**
 * The emulated virtualization host: QEMU TCG with emulated SVM, our host kernel, the real root over
 * virtio-9p, and a control agent. See host.ts.
 */
export { EmulatedHost, type EmulatedHostOptions, type RunOptions, type RunResult } from './host';
export { agentSource } from './agent';
export { buildInitramfs, singleInitCpio, writeCpio, type CpioEntry } from './initramfs';
export { qemuArgs } from './qemu';
