/**
 * Manifests, indexes and image configs, parsed from untrusted JSON into checked types. Anything
 * that is not the shape the OCI image spec (or Docker's v2 schema 2) describes is an
 * InvalidImageError that says which field; unknown media types are UnsupportedMediaTypeError.
 */
import { InvalidImageError, PlatformUnavailableError, UnsupportedMediaTypeError } from './errors';
import { isDigest } from './digest';
import { CONFIG_TYPES, INDEX_TYPES, MANIFEST_TYPES, MEDIA } from './media-types';
import { formatPlatform, normalizePlatform, platformMatches, type Platform } from './platform';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageManifest {
  readonly mediaType: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface ImageIndex {
  readonly mediaType: string;
  readonly manifests: readonly Descriptor[];
}

export type ManifestDocument = { kind: 'manifest'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

/** What a zone needs from the image config, with Docker's defaults filled in. */
export interface ImageConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: readonly string[];
  readonly workingDir: string;
  readonly user: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly stopSignal?: string;
  readonly exposedPorts: readonly string[];
  readonly volumes: readonly string[];
}

export interface ParsedImageConfig {
  readonly platform: Platform;
  readonly config: ImageConfig;
  /** Digests of the uncompressed layer tars, in order (rootfs.diff_ids). */
  readonly diffIds: readonly string[];
}

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
const MAX_INDEX_ENTRIES = 1024;
const MAX_LIST = 65536;

function parseJson(bytes: Buffer, what: string, max: number): unknown {
  if (bytes.length > max) throw new InvalidImageError(what, `${bytes.length} bytes is more than the ${max} allowed`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InvalidImageError(what, `not JSON: ${(err as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new InvalidImageError(what, 'must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw new InvalidImageError(`${what}.${k}`, 'must be a string');
    out[k] = val;
  }
  return out;
}

function stringList(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > MAX_LIST || !v.every((s) => typeof s === 'string')) {
    throw new InvalidImageError(what, 'must be a list of strings');
  }
  return v as string[];
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new InvalidImageError(what, 'must be a descriptor object');
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType.length === 0 || mediaType.length > 256) throw new InvalidImageError(`${what}.mediaType`, 'must be a non-empty string');
  if (!isDigest(digest)) throw new InvalidImageError(`${what}.digest`, `${JSON.stringify(digest)} is not sha256:<64 hex>`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new InvalidImageError(`${what}.size`, 'must be a non-negative integer');
  let platform: Platform | undefined;
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObject(p) || typeof p.os !== 'string' || typeof p.architecture !== 'string' || (p.variant !== undefined && typeof p.variant !== 'string')) {
      throw new InvalidImageError(`${what}.platform`, 'must have string os and architecture');
    }
    platform = normalizePlatform({ os: p.os, architecture: p.architecture, variant: p.variant as string | undefined });
  }
  const annotations = stringMap(v.annotations, `${what}.annotations`);
  return { mediaType, digest, size, ...(platform ? { platform } : {}), ...(annotations ? { annotations } : {}) };
}

/**
 * Parses a manifest or an index. `declared` is the media type the registry's Content-Type or the
 * referring descriptor gave; the document's own mediaType field wins when present.
 */
export function parseManifestDocument(bytes: Buffer, what: string, declared?: string): ManifestDocument {
  const doc = parseJson(bytes, what, MAX_MANIFEST_BYTES);
  if (!isObject(doc)) throw new InvalidImageError(what, 'must be a JSON object');
  if (doc.schemaVersion === 1) {
    throw new UnsupportedMediaTypeError(what, 'application/vnd.docker.distribution.manifest.v1+json (schema 1)', [...MANIFEST_TYPES, ...INDEX_TYPES]);
  }
  if (doc.schemaVersion !== 2) throw new InvalidImageError(`${what}.schemaVersion`, `must be 2, is ${JSON.stringify(doc.schemaVersion)}`);
  const ownType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const mediaType = ownType ?? (declared && declared !== 'application/json' ? declared : Array.isArray(doc.manifests) ? MEDIA.ociIndex : MEDIA.ociManifest);
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new InvalidImageError(`${what}.manifests`, 'must be a list');
    if (doc.manifests.length > MAX_INDEX_ENTRIES) throw new InvalidImageError(`${what}.manifests`, `more than ${MAX_INDEX_ENTRIES} entries`);
    return { kind: 'index', index: { mediaType, manifests: doc.manifests.map((m, i) => parseDescriptor(m, `${what}.manifests[${i}]`)) } };
  }
  if (MANIFEST_TYPES.includes(mediaType)) {
    if (!Array.isArray(doc.layers)) throw new InvalidImageError(`${what}.layers`, 'must be a list');
    const config = parseDescriptor(doc.config, `${what}.config`);
    if (!CONFIG_TYPES.includes(config.mediaType)) throw new UnsupportedMediaTypeError(`${what}.config`, config.mediaType, CONFIG_TYPES);
    const layers = doc.layers.map((l, i) => parseDescriptor(l, `${what}.layers[${i}]`));
    return { kind: 'manifest', manifest: { mediaType, config, layers } };
  }
  throw new UnsupportedMediaTypeError(what, mediaType, [...MANIFEST_TYPES, ...INDEX_TYPES]);
}

/** Picks the index entry for `platform`; a variant-less entry wins over others when no variant was asked for. */
export function selectPlatform(index: ImageIndex, platform: Platform, reference: string): Descriptor {
  const images = index.manifests.filter((m) => MANIFEST_TYPES.includes(m.mediaType) || INDEX_TYPES.includes(m.mediaType));
  const matches = images.filter((m) => m.platform && platformMatches(platform, m.platform));
  const best = matches.find((m) => m.platform?.variant === platform.variant) ?? matches[0];
  if (best) return best;
  const available = images.map((m) => (m.platform ? formatPlatform(m.platform) : `(no platform) ${m.digest}`));
  throw new PlatformUnavailableError(reference, formatPlatform(platform), available);
}

export function parseImageConfig(bytes: Buffer, what: string): ParsedImageConfig {
  const doc = parseJson(bytes, what, MAX_CONFIG_BYTES);
  if (!isObject(doc)) throw new InvalidImageError(what, 'must be a JSON object');
  if (typeof doc.architecture !== 'string' || typeof doc.os !== 'string') throw new InvalidImageError(what, 'must name its os and architecture');
  const platform = normalizePlatform({ os: doc.os, architecture: doc.architecture, variant: typeof doc.variant === 'string' ? doc.variant : undefined });
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers') throw new InvalidImageError(`${what}.rootfs`, 'must be {"type": "layers", "diff_ids": [...]}');
  const diffIds = stringList(rootfs.diff_ids, `${what}.rootfs.diff_ids`);
  diffIds.forEach((d, i) => {
    if (!isDigest(d)) throw new InvalidImageError(`${what}.rootfs.diff_ids[${i}]`, `${JSON.stringify(d)} is not sha256:<64 hex>`);
  });
  const c = doc.config === undefined || doc.config === null ? {} : doc.config;
  if (!isObject(c)) throw new InvalidImageError(`${what}.config`, 'must be an object');
  const str = (v: unknown, field: string): string => {
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new InvalidImageError(`${what}.config.${field}`, 'must be a string');
    return v;
  };
  const keys = (v: unknown, field: string): string[] => Object.keys(stringOrEmptyObjectMap(v, `${what}.config.${field}`));
  const stopSignal = str(c.StopSignal, 'StopSignal');
  return {
    platform,
    diffIds,
    config: {
      entrypoint: stringList(c.Entrypoint, `${what}.config.Entrypoint`),
      cmd: stringList(c.Cmd, `${what}.config.Cmd`),
      env: stringList(c.Env, `${what}.config.Env`),
      workingDir: str(c.WorkingDir, 'WorkingDir'),
      user: str(c.User, 'User'),
      labels: stringMap(c.Labels, `${what}.config.Labels`) ?? {},
      ...(stopSignal ? { stopSignal } : {}),
      exposedPorts: keys(c.ExposedPorts, 'ExposedPorts'),
      volumes: keys(c.Volumes, 'Volumes'),
    },
  };
}

/** ExposedPorts and Volumes are sets written as objects whose values are `{}`. */
function stringOrEmptyObjectMap(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new InvalidImageError(what, 'must be an object');
  return v;
}
