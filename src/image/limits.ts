/**
 * Bounds on what one image may make us read, write and keep. Layers are hostile input: every
 * count and size that a tar header or a manifest claims is checked against these before use.
 */
export interface ImageLimits {
  /** Layers in one manifest. Docker stops at 127; we allow some room. */
  readonly maxLayers: number;
  /** Entries (files, dirs, links, whiteouts) in one layer. */
  readonly maxEntriesPerLayer: number;
  /** Bytes of file content across all layers, after decompression. */
  readonly maxUnpackedBytes: number;
  /** Bytes of one compressed blob (registry downloads, archive members). */
  readonly maxBlobBytes: number;
  /** Bytes of a path (after PAX / GNU long names) and of a link target. */
  readonly maxPathBytes: number;
  /** Symlinks followed while resolving one path inside the root. */
  readonly maxSymlinkHops: number;
}

export const DEFAULT_LIMITS: ImageLimits = {
  maxLayers: 256,
  maxEntriesPerLayer: 1_000_000,
  maxUnpackedBytes: 64 * 1024 ** 3,
  maxBlobBytes: 32 * 1024 ** 3,
  maxPathBytes: 4096,
  maxSymlinkHops: 40,
};

export function resolveLimits(partial?: Partial<ImageLimits>): ImageLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}
