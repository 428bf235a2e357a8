/**
 * bulkhead/kernel: kernels for zones and for the emulated host. Config fragments under
 * kernel-configs/, built from the pinned Debian kernel source (kernel-configs/source.json) and
 * cached by (pinned version, config hash).
 *
 *   const { vmlinux } = await buildKernel({ config: 'zone' });   // minutes the first time, then cached
 */
export {
  buildKernel,
  findKernel,
  listKernels,
  type KernelArtifacts,
  type KernelBuildInfo,
  type KernelBuildOptions,
} from './build';
export { KERNEL_FLAVORS, loadFragment, type KernelFlavor, type KernelFragment, type KernelOption } from './fragment';
export { movePin, readPin, type KernelSourcePin } from './pin';
export { compareDebianVersions } from './debian-version';
export { cacheRoot } from '../util/cache';
