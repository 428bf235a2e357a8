/**
 * `pullImage`: an image from a registry into the store. The manifest (or the platform's manifest
 * out of an index) decides the store key, so an image already built is not downloaded again. Each
 * layer is downloaded into the build's work dir, verified, applied and deleted before the next.
 */
import * as path from 'node:path';
import { buildImage, checkAborted, type BuildOptions, type LayerInput } from './build';
import { digestHex } from './digest';
import { InvalidImageError } from './errors';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseImageConfig, parseManifestDocument, selectPlatform } from './manifest';
import { DEFAULT_PLATFORM, formatPlatform, parsePlatform, platformMatches, type Platform } from './platform';
import { type RegistryAuth } from './registry-auth';
import { RegistryClient } from './registry-client';
import { canonicalName, parseReference, taggedName } from './reference';
import { ImageStore, type ImageArtifact } from './store';

export interface PullOptions extends BuildOptions {
  /** Default linux/amd64. */
  readonly platform?: Platform | string;
  readonly auth?: RegistryAuth;
  /** Plain HTTP for a registry that is not on the loopback. */
  readonly insecure?: boolean;
  /** Deadline for each response's headers and between body chunks (default 30 s). */
  readonly timeoutMs?: number;
}

const MAX_INDEX_DEPTH = 2;

export async function pullImage(reference: string, opts: PullOptions = {}): Promise<ImageArtifact> {
  const store = opts.store ?? new ImageStore();
  const ref = parseReference(reference);
  const platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : (opts.platform ?? DEFAULT_PLATFORM);
  const names = taggedName(ref) ? [taggedName(ref)!] : [];
  checkAborted(opts.signal, reference);
  if (ref.digest && store.get(ref.digest)) {
    await store.tag(ref.digest, names);
    opts.onProgress?.({ phase: 'cached', message: `${reference}: already in the store` });
    return store.get(ref.digest)!;
  }
  const client = new RegistryClient(ref, { auth: opts.auth, insecure: opts.insecure, signal: opts.signal, timeoutMs: opts.timeoutMs });
  opts.onProgress?.({ phase: 'resolve', message: `${canonicalName(ref)}: fetching the manifest` });

  let fetched = await client.manifest(ref.digest ?? ref.tag!, MAX_MANIFEST_BYTES);
  let doc = parseManifestDocument(fetched.bytes, `manifest ${fetched.url}`, fetched.mediaType);
  for (let depth = 0; doc.kind === 'index'; depth++) {
    if (depth >= MAX_INDEX_DEPTH) throw new InvalidImageError(fetched.url, `indexes nested more than ${MAX_INDEX_DEPTH} deep`);
    const chosen = selectPlatform(doc.index, platform, canonicalName(ref));
    opts.onProgress?.({ phase: 'resolve', message: `${canonicalName(ref)}: ${formatPlatform(platform)} is ${chosen.digest}` });
    fetched = await client.manifest(chosen.digest, MAX_MANIFEST_BYTES);
    doc = parseManifestDocument(fetched.bytes, `manifest ${fetched.url}`, chosen.mediaType);
  }
  const manifest = doc.manifest;
  const digest = fetched.digest;
  if (store.get(digest)) {
    await store.tag(digest, names);
    opts.onProgress?.({ phase: 'cached', message: `${reference}: ${digest} already in the store` });
    return store.get(digest)!;
  }
  const rawConfig = await client.blobBytes(manifest.config, MAX_CONFIG_BYTES, 'image config');
  const parsed = parseImageConfig(rawConfig, `image config ${manifest.config.digest}`);
  if (!platformMatches(platform, parsed.platform)) {
    throw new InvalidImageError(`${canonicalName(ref)} (${digest})`, `is for ${formatPlatform(parsed.platform)}, not ${formatPlatform(platform)}`);
  }
  const layers: LayerInput[] = manifest.layers.map((desc, i) => ({
    name: desc.digest,
    digest: desc.digest,
    mediaType: desc.mediaType,
    size: desc.size,
    fetch: async (ctx) => {
      const file = path.join(ctx.workDir, `blob-${digestHex(desc.digest)}`);
      await client.downloadBlob(desc, file, `layer ${i + 1}`, ctx.onBytes);
      return { file, temporary: true };
    },
  }));
  return buildImage(
    {
      digest,
      source: { kind: 'registry', location: fetched.url, reference: canonicalName(ref) },
      rawConfig,
      configDigest: manifest.config.digest,
      parsed,
      layers,
      names,
    },
    { ...opts, store },
  );
}
