/**
 * bulkhead: zones — OCI images booted in their own small VMs with their own kernels — and the
 * errors every layer throws. Each layer below has a subpath of its own: bulkhead/kvm (VMs on
 * /dev/kvm), bulkhead/host (probe, emulated host), bulkhead/kernel (kernel builds),
 * bulkhead/image (OCI images to erofs).
 */
export * from './errors';
export * from './zone';
export { connect, ZoneClient, type ConnectOptions, type ServerHealth } from './server/client';
export { OutputLimitError } from './host/emulated/errors';
