/**
 * Kernels for zones and for the emulated host: config fragments under kernel-configs/, built from
 * Debian's kernel source and cached by (source version, config hash).
 */
export {
  buildKernel,
  findKernel,
  kernelCacheKey,
  listKernels,
  type KernelArtifacts,
  type KernelBuildInfo,
  type KernelBuildOptions,
} from './build';
export {
  describeDropped,
  findDroppedOptions,
  fragmentHash,
  KERNEL_FLAVORS,
  KERNEL_RECIPE_VERSION,
  kernelConfigsDir,
  loadFragment,
  parseDotConfig,
  parseFragment,
  type DroppedOption,
  type KernelFlavor,
  type KernelFragment,
  type KernelOption,
} from './fragment';
export { ensureKernelSource, KERNEL_SOURCE_PACKAGE, resolveSourceVersion, type KernelSource } from './source';
export { cacheRoot } from './cache';
