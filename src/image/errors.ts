/**
 * Typed errors of the image subsystem. Each names what was wrong, where, and what is allowed, so a
 * caller can branch on `err.code` and a person can act on `err.message`.
 */
import { BulkheadError, type ImageErrorCode } from '../errors';

export type { ImageErrorCode } from '../errors';

/** The base of every image error. */
export class ImageError extends BulkheadError {
  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** No image by that name in the store (and, where we looked, not in a registry or on disk either). */
export class ImageNotFoundError extends ImageError {
  constructor(
    readonly reference: string,
    readonly searched: readonly string[],
    options?: { cause?: unknown; detail?: string },
  ) {
    const detail = options?.detail ? `: ${options.detail}` : '';
    super('IMAGE_NOT_FOUND', `no image ${JSON.stringify(reference)}; looked in ${searched.join(', ')}${detail}`, options);
  }
}

/** A reference that does not follow the `[host[:port]/]name[:tag][@sha256:hex]` grammar. */
export class InvalidReferenceError extends ImageError {
  constructor(
    readonly reference: string,
    readonly reason: string,
  ) {
    super(
      'IMAGE_REFERENCE_INVALID',
      `invalid image reference ${JSON.stringify(reference)}: ${reason}; allowed: [HOST[:PORT]/]NAME[:TAG][@sha256:HEX], ` +
        'NAME in lower case (a-z, 0-9, separated by ".", "_", "__" or "-", components joined by "/")',
    );
  }
}

/** Content whose sha256 (or size) is not the one its descriptor, reference or registry promised. */
export class DigestMismatchError extends ImageError {
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super('IMAGE_DIGEST_MISMATCH', `${what}: expected ${expected}, got ${actual}; the content was changed or corrupted`);
  }
}

/** A manifest, config or layer media type we do not handle. */
export class UnsupportedMediaTypeError extends ImageError {
  constructor(
    readonly what: string,
    readonly mediaType: string,
    readonly allowed: readonly string[],
  ) {
    super('IMAGE_MEDIA_TYPE_UNSUPPORTED', `${what} has media type ${JSON.stringify(mediaType)}; supported: ${allowed.join(', ')}`);
  }
}

/**
 * A layer that tries to write outside the root, links outside it, or exceeds a size or count
 * limit. `entry` is the tar member's name as given; `layer` the layer's digest or file.
 */
export class HostileLayerError extends ImageError {
  constructor(
    readonly layer: string,
    readonly entry: string | undefined,
    readonly reason: string,
  ) {
    const at = entry === undefined ? '' : ` at entry ${JSON.stringify(entry)}`;
    super('IMAGE_LAYER_HOSTILE', `layer ${layer} rejected${at}: ${reason}`);
  }
}

/** A manifest, index, config, layout or archive that is malformed. */
export class InvalidImageError extends ImageError {
  constructor(
    readonly what: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('IMAGE_INVALID', `${what}: ${reason}`, options);
  }
}

/** An image index with no manifest for the platform asked for. */
export class PlatformUnavailableError extends ImageError {
  constructor(
    readonly reference: string,
    readonly wanted: string,
    readonly available: readonly string[],
  ) {
    super(
      'IMAGE_PLATFORM_UNAVAILABLE',
      `${reference} has no image for ${wanted}; available: ${available.length ? available.join(', ') : 'none'}`,
    );
  }
}

/** A registry that refused, failed or answered nonsense. `status` is the HTTP status when there was one. */
export class RegistryError extends ImageError {
  constructor(
    readonly url: string,
    readonly status: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('IMAGE_REGISTRY_ERROR', `${message} (${url}${status === undefined ? '' : `, HTTP ${status}`})`, options);
  }
}

/** A tool of the build (mkfs.erofs, zstd, mknod) that failed or is missing. */
export class ImageBuildError extends ImageError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IMAGE_BUILD_FAILED', message, options);
  }
}
