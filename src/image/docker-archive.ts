/**
 * The `docker save` format (also `skopeo copy … docker-archive:`), unpacked: manifest.json lists
 * for each image its config file, its RepoTags and its layer tars. There are no manifest digests
 * in it, so the store key is the digest of a Docker v2 manifest we write from the config's digest
 * and the layers' diff IDs: the same archive always gets the same key. Layers are checked against
 * the config's rootfs.diff_ids as they are applied; the config against its file name when that is
 * a digest (it is for every Docker and skopeo archive).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ImagePlan, type LayerInput } from './build';
import { sha256 } from './digest';
import { DigestMismatchError, InvalidImageError, InvalidReferenceError } from './errors';
import { parseImageConfig } from './manifest';
import { MEDIA } from './media-types';
import { DEFAULT_PLATFORM, formatPlatform, platformMatches, type Platform } from './platform';
import { canonicalName, familiarName, parseReference } from './reference';
import { lstatOrUndefined, StagingRoot } from './staging-root';
import { type ImageSourceKind } from './store';

interface DockerArchiveEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

export interface DockerArchiveSelection {
  /** A RepoTag to pick when the archive holds several images. */
  readonly tag?: string;
  readonly platform?: Platform;
  /** Names to record (canonical form); default: the archive's RepoTags. */
  readonly names?: readonly string[];
  readonly kind?: ImageSourceKind;
  readonly location?: string;
}

export function isDockerArchive(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'manifest.json'));
}

export function planDockerArchive(dir: string, selection: DockerArchiveSelection, maxBlobBytes: number): ImagePlan {
  const manifestFile = path.join(dir, 'manifest.json');
  const entries = readEntries(manifestFile);
  const entry = pick(entries, selection.tag, manifestFile);
  const configFile = memberFile(dir, entry.Config, 'Config', 8 * 1024 * 1024);
  const rawConfig = fs.readFileSync(configFile);
  const configDigest = sha256(rawConfig);
  const named = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(entry.Config);
  if (named && `sha256:${named[1]}` !== configDigest) throw new DigestMismatchError(`image config ${entry.Config}`, `sha256:${named[1]}`, configDigest);
  const parsed = parseImageConfig(rawConfig, `image config ${entry.Config}`);
  const platform = selection.platform ?? DEFAULT_PLATFORM;
  if (!platformMatches(platform, parsed.platform)) {
    throw new InvalidImageError(`image ${entry.Config} in ${dir}`, `is for ${formatPlatform(parsed.platform)}, not ${formatPlatform(platform)}`);
  }
  const layerFiles = entry.Layers.map((l, i) => memberFile(dir, l, `Layers[${i}]`, maxBlobBytes));
  const layers: LayerInput[] = layerFiles.map((file, i) => ({
    name: entry.Layers[i]!,
    size: fs.statSync(file).size,
    fetch: async (ctx) => {
      ctx.onBytes(fs.statSync(file).size);
      return { file, temporary: false };
    },
  }));
  const synthesized = {
    schemaVersion: 2,
    mediaType: MEDIA.dockerManifest,
    config: { mediaType: MEDIA.dockerConfig, digest: configDigest, size: rawConfig.length },
    layers: parsed.diffIds.map((d, i) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: d, size: fs.statSync(layerFiles[i] ?? manifestFile).size })),
  };
  const names = selection.names ?? repoTagNames(entry.RepoTags);
  return {
    digest: sha256(JSON.stringify(synthesized)),
    source: { kind: selection.kind ?? 'docker-archive', location: selection.location ?? dir, ...(names[0] ? { reference: familiarName(names[0]) } : {}) },
    rawConfig,
    configDigest,
    parsed,
    layers,
    names,
  };
}

function readEntries(file: string): DockerArchiveEntry[] {
  const st = fs.lstatSync(file);
  if (!st.isFile() || st.size > 4 * 1024 * 1024) throw new InvalidImageError(file, 'is not a regular file of at most 4 MiB');
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidImageError(file, `not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc) || doc.length === 0) throw new InvalidImageError(file, 'must be a non-empty list of images');
  return doc.map((e: unknown, i) => {
    const o = e as Partial<Record<keyof DockerArchiveEntry, unknown>>;
    if (typeof o !== 'object' || o === null || typeof o.Config !== 'string') throw new InvalidImageError(`${file}[${i}].Config`, 'must be a string');
    const tags = o.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new InvalidImageError(`${file}[${i}].RepoTags`, 'must be a list of strings');
    if (!Array.isArray(o.Layers) || !o.Layers.every((t) => typeof t === 'string')) throw new InvalidImageError(`${file}[${i}].Layers`, 'must be a list of strings');
    return { Config: o.Config, RepoTags: tags as string[], Layers: o.Layers as string[] };
  });
}

function pick(entries: DockerArchiveEntry[], tag: string | undefined, file: string): DockerArchiveEntry {
  const all = entries.flatMap((e) => e.RepoTags);
  if (tag === undefined) {
    if (entries.length === 1) return entries[0]!;
    throw new InvalidImageError(file, `holds ${entries.length} images (${all.join(', ') || 'untagged'}); say which with a tag`);
  }
  const want = normalizeTag(tag);
  const found = entries.find((e) => e.RepoTags.some((t) => t === tag || normalizeTag(t) === want));
  if (!found) throw new InvalidImageError(file, `no image tagged ${JSON.stringify(tag)}; tags in it: ${all.join(', ') || 'none'}`);
  return found;
}

function normalizeTag(t: string): string {
  try {
    return canonicalName(parseReference(t));
  } catch {
    return t;
  }
}

function repoTagNames(tags: readonly string[]): string[] {
  const out: string[] = [];
  for (const t of tags) {
    try {
      const ref = parseReference(t);
      if (ref.tag !== undefined && ref.digest === undefined) out.push(canonicalName(ref));
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err;
    }
  }
  return out;
}

/**
 * A file named by manifest.json: relative and inside the archive. Symlinks on the way (docker
 * writes `<id>/layer.tar` links to shared layers) are followed only within the archive's dir.
 */
function memberFile(dir: string, member: string, what: string, maxBytes: number): string {
  const parts = member.split('/').filter((p) => p !== '' && p !== '.');
  if (member.startsWith('/') || parts.includes('..') || parts.length === 0) {
    throw new InvalidImageError(`manifest.json ${what}`, `${JSON.stringify(member)} is not a relative path inside the archive`);
  }
  let real: string;
  try {
    const root = new StagingRoot(dir, 40);
    real = root.abs(root.resolve(parts, { followLast: true, layer: dir, entry: member }));
  } catch (err) {
    throw new InvalidImageError(`manifest.json ${what}`, `${JSON.stringify(member)} cannot be resolved: ${(err as Error).message}`);
  }
  const st = lstatOrUndefined(real);
  if (!st) throw new InvalidImageError(`manifest.json ${what}`, `${JSON.stringify(member)} is missing from the archive`);
  if (!st.isFile()) throw new InvalidImageError(`manifest.json ${what}`, `${JSON.stringify(member)} is not a regular file`);
  if (st.size > maxBytes) throw new InvalidImageError(`manifest.json ${what}`, `${JSON.stringify(member)} has ${st.size} bytes, more than the ${maxBytes} allowed`);
  return real;
}
