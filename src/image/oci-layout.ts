/**
 * An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/…`), as `umoci`, `skopeo
 * copy … oci:DIR` and an unpacked `oci-archive:` write it, turned into an image plan. Blobs are
 * named only from validated digests and must be regular files of the size their descriptor says,
 * so a layout cannot point us at a device or a file elsewhere; each blob's sha256 is checked
 * before it is used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ImagePlan, type LayerInput } from './build';
import { digestHex, verifyBytes, verifyFile } from './digest';
import { InvalidImageError, InvalidReferenceError } from './errors';
import { parseImageConfig, parseManifestDocument, selectPlatform, type Descriptor, type ImageManifest } from './manifest';
import { MEDIA } from './media-types';
import { DEFAULT_PLATFORM, formatPlatform, platformMatches, type Platform } from './platform';
import { canonicalName, parseReference } from './reference';
import { type ImageSourceKind } from './store';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';
const MAX_NESTED_INDEXES = 4;

export interface LayoutSelection {
  /** The `org.opencontainers.image.ref.name` to pick in index.json (a tag like `latest`, or a full name). */
  readonly tag?: string;
  readonly platform?: Platform;
  /** Names to record (canonical form); when absent, a full reference found in the layout is used. */
  readonly names?: readonly string[];
  readonly kind?: ImageSourceKind;
  readonly location?: string;
}

export function isOciLayout(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'oci-layout')) && fs.existsSync(path.join(dir, 'index.json'));
}

export class OciLayout {
  constructor(readonly dir: string) {}

  /** Reads a blob into memory after checking it is a regular file of the descriptor's size; verifies its digest. */
  readBlob(desc: { digest: string; size: number }, what: string, maxBytes: number): Buffer {
    const file = this.blobFile(desc, what, maxBytes);
    const data = fs.readFileSync(file);
    verifyBytes(data, what, desc);
    return data;
  }

  blobFile(desc: { digest: string; size: number }, what: string, maxBytes: number): string {
    const file = path.join(this.dir, 'blobs', 'sha256', digestHex(desc.digest));
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      throw new InvalidImageError(`${what} ${desc.digest}`, `missing from the layout (${file})`);
    }
    if (!st.isFile()) throw new InvalidImageError(`${what} ${desc.digest}`, `${file} is not a regular file`);
    if (st.size !== desc.size) throw new InvalidImageError(`${what} ${desc.digest}`, `${file} has ${st.size} bytes, its descriptor says ${desc.size}`);
    if (st.size > maxBytes) throw new InvalidImageError(`${what} ${desc.digest}`, `${st.size} bytes is more than the ${maxBytes} allowed`);
    return file;
  }

  private readIndexJson(): { manifests: Descriptor[]; raw: Buffer } {
    const file = path.join(this.dir, 'index.json');
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.size > 4 * 1024 * 1024) throw new InvalidImageError(file, 'is not a regular file of at most 4 MiB');
    const raw = fs.readFileSync(file);
    const doc = parseManifestDocument(raw, file, MEDIA.ociIndex);
    if (doc.kind !== 'index') throw new InvalidImageError(file, 'is not an image index');
    return { manifests: [...doc.index.manifests], raw };
  }

  /** The ref names in index.json, for messages and `bulkhead image import --tag`. */
  refNames(): string[] {
    return this.readIndexJson().manifests.flatMap((m) => (m.annotations?.[REF_NAME] ? [m.annotations[REF_NAME]] : []));
  }

  plan(selection: LayoutSelection, maxBlobBytes: number): ImagePlan {
    const platform = selection.platform ?? DEFAULT_PLATFORM;
    const { manifests } = this.readIndexJson();
    const top = this.pickTop(manifests, selection.tag, platform);
    const manifestDesc = this.descend(top, platform, 0);
    const raw = this.readBlob(manifestDesc, 'manifest', 4 * 1024 * 1024);
    const doc = parseManifestDocument(raw, `manifest ${manifestDesc.digest}`, manifestDesc.mediaType);
    if (doc.kind !== 'manifest') throw new InvalidImageError(manifestDesc.digest, 'expected an image manifest');
    return this.planFor(manifestDesc.digest, doc.manifest, { ...selection, names: selection.names ?? namesFromAnnotations(top) }, maxBlobBytes, platform);
  }

  private planFor(digest: string, manifest: ImageManifest, selection: LayoutSelection, maxBlobBytes: number, platform: Platform): ImagePlan {
    const rawConfig = this.readBlob(manifest.config, 'image config', 8 * 1024 * 1024);
    const parsed = parseImageConfig(rawConfig, `image config ${manifest.config.digest}`);
    if (!platformMatches(platform, parsed.platform)) {
      throw new InvalidImageError(`image ${digest}`, `is for ${formatPlatform(parsed.platform)}, not ${formatPlatform(platform)}`);
    }
    const layers: LayerInput[] = manifest.layers.map((desc, i) => ({
      name: desc.digest,
      digest: desc.digest,
      mediaType: desc.mediaType,
      size: desc.size,
      fetch: async (ctx) => {
        const file = this.blobFile(desc, `layer ${i + 1}`, maxBlobBytes);
        await verifyFile(file, `layer ${i + 1} ${desc.digest}`, desc, ctx.signal);
        ctx.onBytes(desc.size);
        return { file, temporary: false };
      },
    }));
    return {
      digest,
      source: { kind: selection.kind ?? 'oci-layout', location: selection.location ?? this.dir, ...(selection.names?.[0] ? { reference: selection.names[0] } : {}) },
      rawConfig,
      configDigest: manifest.config.digest,
      parsed,
      layers,
      names: selection.names ?? [],
    };
  }

  private pickTop(manifests: Descriptor[], tag: string | undefined, platform: Platform): Descriptor {
    const where = path.join(this.dir, 'index.json');
    if (tag !== undefined) {
      const found = manifests.filter((m) => m.annotations?.[REF_NAME] === tag);
      if (found.length === 1) return found[0]!;
      if (found.length > 1) return selectPlatform({ mediaType: MEDIA.ociIndex, manifests: found }, platform, `${this.dir}:${tag}`);
      const names = manifests.flatMap((m) => (m.annotations?.[REF_NAME] ? [m.annotations[REF_NAME]] : []));
      throw new InvalidImageError(where, `no image named ${JSON.stringify(tag)}; names in it: ${names.length ? names.join(', ') : 'none'}`);
    }
    if (manifests.length === 0) throw new InvalidImageError(where, 'lists no images');
    if (manifests.length === 1) return manifests[0]!;
    if (manifests.every((m) => m.platform)) return selectPlatform({ mediaType: MEDIA.ociIndex, manifests }, platform, this.dir);
    const names = manifests.map((m) => m.annotations?.[REF_NAME] ?? m.digest);
    throw new InvalidImageError(where, `lists ${manifests.length} images (${names.join(', ')}); say which with a tag`);
  }

  /** Follows nested indexes down to a manifest for the platform. */
  private descend(desc: Descriptor, platform: Platform, depth: number): Descriptor {
    if (desc.mediaType === MEDIA.ociManifest || desc.mediaType === MEDIA.dockerManifest) return desc;
    if (depth >= MAX_NESTED_INDEXES) throw new InvalidImageError(desc.digest, `indexes nested more than ${MAX_NESTED_INDEXES} deep`);
    const raw = this.readBlob(desc, 'image index', 4 * 1024 * 1024);
    const doc = parseManifestDocument(raw, `index ${desc.digest}`, desc.mediaType);
    if (doc.kind === 'manifest') return { ...desc, mediaType: doc.manifest.mediaType };
    return this.descend(selectPlatform(doc.index, platform, `${this.dir}@${desc.digest}`), platform, depth + 1);
  }
}

/** A full image name carried in the layout (containerd's annotation, or a ref.name that is a whole reference). */
function namesFromAnnotations(desc: Descriptor): string[] {
  for (const value of [desc.annotations?.[CONTAINERD_NAME], desc.annotations?.[REF_NAME]]) {
    if (!value || !/[/:]/.test(value)) continue;
    try {
      const ref = parseReference(value);
      if (ref.tag !== undefined && ref.digest === undefined) return [canonicalName(ref)];
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err;
    }
  }
  return [];
}
