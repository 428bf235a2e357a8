/**
 * The one pipeline every source ends in: an image plan (manifest digest, config, layers) → the
 * store. Look in the store → take the digest's lock → look again → fetch each layer as a verified
 * file → apply it onto a staging dir, checking its diff ID → mkfs.erofs → write config.json and
 * image.json → rename the finished dir into place. Whatever fails or is aborted, the work dir goes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AbortedError } from '../errors';
import { applyLayer } from './apply-layer';
import { DigestMismatchError, InvalidImageError } from './errors';
import { applyDirectoryTimes, makeErofs } from './erofs';
import { ByteBudget, openLayer } from './layer-stream';
import { resolveLimits, type ImageLimits } from './limits';
import { type ParsedImageConfig } from './manifest';
import { layerCompression } from './media-types';
import { formatBytes, throttledBytes, type ProgressCallback } from './progress';
import { StagingRoot } from './staging-root';
import { isNoSpace, memoryStagingDir, type StagingMode } from './staging';
import { ImageStore, ROOTFS_RECIPE, type ImageArtifact, type ImageRecord, type ImageSourceInfo } from './store';

export interface LayerFetchContext {
  readonly workDir: string;
  readonly signal?: AbortSignal;
  readonly limits: ImageLimits;
  /** Bytes fetched or verified so far of this layer. */
  readonly onBytes: (bytes: number) => void;
}

export interface LayerInput {
  /** How messages name the layer: its digest, or its file in an archive. */
  readonly name: string;
  /** Digest of the blob as stored (compressed), when the source has one. */
  readonly digest?: string;
  readonly mediaType?: string;
  readonly size?: number;
  /** Makes the layer available as a file whose digest has been checked; `temporary` files are removed after use. */
  fetch(ctx: LayerFetchContext): Promise<{ file: string; temporary: boolean }>;
}

export interface ImagePlan {
  readonly digest: string;
  readonly source: ImageSourceInfo;
  readonly rawConfig: Buffer;
  readonly configDigest: string;
  readonly parsed: ParsedImageConfig;
  readonly layers: readonly LayerInput[];
  /** Canonical names to point at the image once it is in the store. */
  readonly names: readonly string[];
}

export interface BuildOptions {
  /** The store to use (default: images/ under the cache root). */
  readonly store?: ImageStore;
  readonly limits?: Partial<ImageLimits>;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressCallback;
  /**
   * Where layers are unpacked before mkfs.erofs: `memory` (/dev/shm), `disk` (beside the store),
   * or `auto` (default): memory when the layers plausibly fit, else disk; see staging.ts.
   */
  readonly staging?: StagingMode;
}

export async function buildImage(plan: ImagePlan, opts: BuildOptions = {}): Promise<ImageArtifact> {
  const store = opts.store ?? new ImageStore();
  const limits = resolveLimits(opts.limits);
  const progress = opts.onProgress ?? (() => undefined);
  checkAborted(opts.signal, plan.digest);
  checkPlan(plan, limits);

  const cached = store.get(plan.digest);
  if (cached) {
    await store.tag(plan.digest, plan.names);
    progress({ phase: 'cached', message: `${plan.digest}: already in the store` });
    return store.get(plan.digest)!;
  }
  const lock = await store.lockDigest(
    plan.digest,
    (pid) => progress({ phase: 'wait', message: `${plan.digest}: waiting for process ${pid}, which is building it` }),
    opts.signal,
  );
  try {
    if (!store.get(plan.digest)) await buildLocked(plan, store, limits, progress, opts.signal, opts.staging ?? 'auto');
  } finally {
    lock.release();
  }
  await store.tag(plan.digest, plan.names);
  const built = store.get(plan.digest);
  if (!built) throw new InvalidImageError(plan.digest, `the built image is not readable in ${store.imageDir(plan.digest)}`);
  progress({ phase: 'done', message: `${plan.digest}: ${formatBytes(built.sizeBytes)} erofs` });
  return built;
}

function checkPlan(plan: ImagePlan, limits: ImageLimits): void {
  if (plan.layers.length > limits.maxLayers) throw new InvalidImageError(plan.digest, `${plan.layers.length} layers is more than the ${limits.maxLayers} allowed`);
  if (plan.parsed.diffIds.length !== plan.layers.length) {
    throw new InvalidImageError(plan.digest, `the manifest has ${plan.layers.length} layers but the config's rootfs.diff_ids has ${plan.parsed.diffIds.length}`);
  }
  plan.layers.forEach((l, i) => {
    if (l.mediaType !== undefined) layerCompression(l.mediaType, `layer ${i + 1} (${l.name})`);
    if (l.size !== undefined && l.size > limits.maxBlobBytes) throw new InvalidImageError(`layer ${l.name}`, `${l.size} bytes is more than the ${limits.maxBlobBytes} allowed`);
  });
}

async function buildLocked(plan: ImagePlan, store: ImageStore, limits: ImageLimits, progress: ProgressCallback, signal: AbortSignal | undefined, staging: StagingMode): Promise<void> {
  const work = store.makeWorkDir();
  try {
    const sizes = plan.layers.map((l) => l.size);
    const compressed = sizes.every((n) => n !== undefined) ? sizes.reduce((a, b) => a! + b!, 0) : undefined;
    const memory = memoryStagingDir(staging, compressed);
    try {
      await buildInto(path.join(memory ?? work, 'rootfs'), work, plan, store, limits, progress, signal);
    } catch (err) {
      if (!memory || staging !== 'auto' || !isNoSpace(err)) throw err;
      progress({ phase: 'apply', message: `${memory} is full: unpacking again on disk` });
      fs.rmSync(memory, { recursive: true, force: true });
      await buildInto(path.join(work, 'rootfs'), work, plan, store, limits, progress, signal);
    } finally {
      if (memory) fs.rmSync(memory, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Unpacks every layer into `rootDir` (created here), makes the erofs in `work`, and publishes it. */
async function buildInto(rootDir: string, work: string, plan: ImagePlan, store: ImageStore, limits: ImageLimits, progress: ProgressCallback, signal?: AbortSignal): Promise<void> {
  const started = Date.now();
  fs.mkdirSync(rootDir, { recursive: true });
  fs.chmodSync(rootDir, 0o755);
  const root = new StagingRoot(rootDir, limits.maxSymlinkHops);
  const dirTimes = new Map<string, Date>();
  const budget = new ByteBudget(limits.maxUnpackedBytes);
  const layerRecords: { digest: string; diffId: string; size: number }[] = [];
  const n = plan.layers.length;

  for (const [i, layer] of plan.layers.entries()) {
    checkAborted(signal, plan.digest);
    const label = `layer ${i + 1}/${n}`;
    const fetchTick = throttledBytes(500, (bytes) =>
      progress({ phase: 'download', message: `${label}: ${formatBytes(bytes)}${layer.size ? ` of ${formatBytes(layer.size)}` : ''}`, layer: i + 1, layers: n, bytes, totalBytes: layer.size }),
    );
    const { file, temporary } = await layer.fetch({ workDir: work, signal, limits, onBytes: fetchTick.update });
    const size = fs.statSync(file).size;
    progress({ phase: 'apply', message: `${label}: applying ${formatBytes(size)}`, layer: i + 1, layers: n, bytes: 0, totalBytes: size });
    const opened = openLayer(file, layer.name, budget);
    const onAbort = (): void => {
      opened.tar.destroy(new AbortedError(`applying ${label} of ${plan.digest}`));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await applyLayer(opened.tar, layer.name, { root, limits, dirTimes, budget, signal });
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await opened.settled;
    }
    checkAborted(signal, plan.digest);
    const diffId = opened.diffId();
    const expected = plan.parsed.diffIds[i]!;
    if (diffId !== expected) throw new DigestMismatchError(`uncompressed ${label} (${layer.name}) against the config's rootfs.diff_ids`, expected, diffId);
    layerRecords.push({ digest: layer.digest ?? diffId, diffId, size });
    if (temporary) fs.rmSync(file, { force: true });
  }
  applyDirectoryTimes(rootDir, dirTimes);

  const out = path.join(work, 'image');
  fs.rmSync(out, { recursive: true, force: true }); // left by an attempt in memory that ran out of space
  fs.mkdirSync(out);
  progress({ phase: 'mkfs', message: `mkfs.erofs (${formatBytes(budget.used)} unpacked)` });
  const sizeBytes = await makeErofs(rootDir, path.join(out, 'rootfs.erofs'), plan.digest, signal);
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(plan.parsed.config, null, 2) + '\n');
  fs.writeFileSync(path.join(out, 'oci-config.json'), plan.rawConfig);
  const record: ImageRecord = {
    recipe: ROOTFS_RECIPE,
    digest: plan.digest,
    configDigest: plan.configDigest,
    platform: plan.parsed.platform,
    source: plan.source,
    layers: layerRecords,
    builtAt: new Date().toISOString(),
    buildMs: Date.now() - started,
    sizeBytes,
  };
  fs.writeFileSync(path.join(out, 'image.json'), JSON.stringify(record, null, 2) + '\n');
  checkAborted(signal, plan.digest);
  store.publish(out, plan.digest);
}

export function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortedError(`building image ${what}`, { cause: signal.reason });
}
