/**
 * Images: an OCI image (a layout, an archive, a registry pull, or the default busybox) becomes an
 * erofs root filesystem in a content-addressed store, which a zone attaches as a read-only disk.
 *
 *   resolveImage(ref) → store hit | busyboxImage | importImage(path) | pullImage(ref)
 *     → plan (manifest digest, config, layers) → buildImage: verify, apply layers, mkfs.erofs
 *     → ~/.cache/bulkhead/images/sha256/<manifest hex>/{rootfs.erofs, config.json, image.json}
 */
export { resolveImage, listImages, removeImage, type ResolveOptions, type RemoveResult } from './resolve';
export { importImage, type ImportOptions } from './import';
export { pullImage, type PullOptions } from './pull';
export { busyboxImage, isDefaultImageName, BUSYBOX_IMAGE_NAME, type BusyboxImageOptions } from './busybox';
export { buildImage, type BuildOptions, type ImagePlan, type LayerInput, type LayerFetchContext } from './build';
export { ImageStore, ROOTFS_RECIPE, type ImageArtifact, type ImageRecord, type ImageSourceInfo, type ImageSourceKind } from './store';
export { type ImageConfig, type Descriptor, type ImageManifest, type ImageIndex } from './manifest';
export { DEFAULT_PLATFORM, parsePlatform, formatPlatform, type Platform } from './platform';
export { parseReference, canonicalName, familiarName, type ImageReference } from './reference';
export { type RegistryAuth } from './registry-auth';
export { DEFAULT_LIMITS, type ImageLimits } from './limits';
export { formatBytes, type ImageProgress, type ImagePhase, type ProgressCallback } from './progress';
export {
  ImageError,
  ImageNotFoundError,
  InvalidReferenceError,
  DigestMismatchError,
  UnsupportedMediaTypeError,
  HostileLayerError,
  InvalidImageError,
  PlatformUnavailableError,
  RegistryError,
  ImageBuildError,
  type ImageErrorCode,
} from './errors';
