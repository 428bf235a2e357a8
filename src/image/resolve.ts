/**
 * `resolveImage`: what a zone calls. A name becomes a built image, by whatever it takes: the
 * store, the default busybox image, an import of a local path, or a pull. And the store's other
 * verbs: `listImages`, `removeImage`.
 */
import { busyboxImage, BUSYBOX_IMAGE_NAME, isDefaultImageName, type BusyboxImageOptions } from './busybox';
import { looksLikeDigest } from './digest';
import { ImageNotFoundError, RegistryError } from './errors';
import { importImage, type ImportOptions } from './import';
import { pullImage, type PullOptions } from './pull';
import { canonicalName, familiarName, parseReference, registryHost, taggedName } from './reference';
import { ImageStore, type ImageArtifact } from './store';

export interface ResolveOptions extends PullOptions, Pick<ImportOptions, 'name' | 'tag'>, Pick<BusyboxImageOptions, 'busybox'> {
  /**
   * When to ask a registry: `missing` (default) only when the store has no such name, `always` to
   * check for a newer manifest, `never` to use the store alone.
   */
  readonly pull?: 'missing' | 'always' | 'never';
}

/**
 * Resolves `reference` to an image in the store:
 * - `/path`, `./path` or `../path`: an OCI layout, docker-save dir, or either as a tar archive;
 * - `sha256:<hex>`: an image already in the store, by manifest digest;
 * - `busybox` (`busybox:latest`): the default image, built from Debian's busybox-static on first
 *   use (unless an image of that name was imported or pulled into the store);
 * - any other reference: the store by name, else a pull from its registry.
 */
export async function resolveImage(reference: string, opts: ResolveOptions = {}): Promise<ImageArtifact> {
  const store = opts.store ?? new ImageStore();
  const o = { ...opts, store };
  if (/^\.{0,2}\//.test(reference)) return importImage(reference, o);
  if (looksLikeDigest(reference)) {
    const found = store.get(reference);
    if (!found) throw new ImageNotFoundError(reference, [store.root]);
    return found;
  }
  const ref = parseReference(reference);
  const pull = opts.pull ?? 'missing';
  if (pull !== 'always') {
    const byName = ref.digest ?? (taggedName(ref) ? store.lookup(taggedName(ref)!) : undefined);
    const found = byName ? store.get(byName) : undefined;
    const isOurBusybox = found?.source.kind === 'busybox-static';
    // Our busybox is rebuilt (re-keyed) when the binary changes: go through busyboxImage for it.
    if (found && !isOurBusybox) return found;
    if (isDefaultImageName(reference) && (isOurBusybox || !found)) return busyboxImage(o);
    if (found) return found;
  }
  if (pull === 'never') {
    throw new ImageNotFoundError(familiarName(canonicalName(ref)), [`the image store ${store.root}`], { detail: 'and pulling is off' });
  }
  try {
    return await pullImage(reference, o);
  } catch (err) {
    if (err instanceof RegistryError && err.status === undefined) {
      throw new ImageNotFoundError(familiarName(canonicalName(ref)), [`the image store ${store.root}`, `the registry ${registryHost(ref)}`], {
        detail: err.message,
        cause: err,
      });
    }
    throw err;
  }
}

export function listImages(opts: { store?: ImageStore } = {}): ImageArtifact[] {
  return (opts.store ?? new ImageStore()).list();
}

export interface RemoveResult {
  /** Names removed from the store (short form). */
  readonly untagged: readonly string[];
  /** Digests whose images were deleted. */
  readonly deleted: readonly string[];
}

/**
 * Removes a name, or an image by digest (or a unique prefix of at least 12 hex digits). An image
 * whose last name goes is deleted. A zone that has the erofs file open keeps reading it.
 */
export async function removeImage(reference: string, opts: { store?: ImageStore } = {}): Promise<RemoveResult> {
  const store = opts.store ?? new ImageStore();
  const digest = digestFor(reference, store);
  if (digest) {
    const untagged = await store.updateRefs((refs) => {
      const names = Object.keys(refs).filter((n) => refs[n] === digest);
      for (const n of names) delete refs[n];
      return names.map(familiarName);
    });
    await store.removeImage(digest);
    return { untagged, deleted: [digest] };
  }
  const ref = parseReference(reference);
  const name = taggedName(ref);
  const target = name ? store.lookup(name) : undefined;
  if (!name || !target) {
    throw new ImageNotFoundError(reference, [`the names in ${store.root}/refs.json`], { detail: name === BUSYBOX_IMAGE_NAME ? 'busybox is built on first use' : undefined });
  }
  const orphaned = await store.updateRefs((refs) => {
    delete refs[name];
    return !Object.values(refs).includes(target);
  });
  if (orphaned) await store.removeImage(target);
  return { untagged: [familiarName(name)], deleted: orphaned ? [target] : [] };
}

function digestFor(reference: string, store: ImageStore): string | undefined {
  if (looksLikeDigest(reference)) {
    if (!store.get(reference) && !Object.values(store.refs()).includes(reference)) throw new ImageNotFoundError(reference, [store.root]);
    return reference;
  }
  const hex = reference.replace(/^sha256:/, '');
  if (!/^[a-f0-9]{12,63}$/.test(hex)) return undefined;
  const matches = store.list().filter((a) => a.digest.slice(7).startsWith(hex));
  if (matches.length === 1) return matches[0]!.digest;
  if (matches.length > 1) throw new ImageNotFoundError(reference, [store.root], { detail: `the prefix matches ${matches.length} images; give more digits` });
  if (reference.startsWith('sha256:')) throw new ImageNotFoundError(reference, [store.root]);
  return undefined; // hex-looking, but no image: it may still be a name
}
