/**
 * `importImage`: a local image into the store. Accepted: an OCI image layout directory, an
 * unpacked `docker save` directory, or either as a tar archive (`skopeo copy … oci-archive:F`,
 * `docker save -o F`, optionally gzipped).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { extractArchive } from './archive';
import { buildImage, checkAborted, type BuildOptions, type ImagePlan } from './build';
import { isDockerArchive, planDockerArchive } from './docker-archive';
import { ImageNotFoundError, InvalidImageError, InvalidReferenceError } from './errors';
import { resolveLimits } from './limits';
import { isOciLayout, OciLayout } from './oci-layout';
import { parsePlatform, type Platform } from './platform';
import { canonicalName, parseReference, taggedName } from './reference';
import { ImageStore, type ImageArtifact } from './store';

export interface ImportOptions extends BuildOptions {
  /** Names to give the image (`myapp:1`); default: the names the layout or archive carries, if any. */
  readonly name?: string | readonly string[];
  /** Which image of a layout or archive that holds several: its ref.name or RepoTag. */
  readonly tag?: string;
  /** Default linux/amd64. */
  readonly platform?: Platform | string;
}

export async function importImage(source: string, opts: ImportOptions = {}): Promise<ImageArtifact> {
  const store = opts.store ?? new ImageStore();
  const limits = resolveLimits(opts.limits);
  const abs = path.resolve(source);
  checkAborted(opts.signal, abs);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new ImageNotFoundError(source, [abs], { detail: 'no such file or directory' });
  }
  const platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform;
  const names = opts.name === undefined ? undefined : normalizeNames(opts.name);
  const selection = { tag: opts.tag, platform, names, location: abs };
  opts.onProgress?.({ phase: 'resolve', message: `reading ${abs}` });
  if (st.isDirectory()) {
    return buildImage(planDirectory(abs, { ...selection }, limits.maxBlobBytes, 'dir'), { ...opts, store });
  }
  if (!st.isFile()) throw new InvalidImageError(abs, 'is neither a directory nor a regular file');
  const work = store.makeWorkDir();
  try {
    const unpacked = path.join(work, 'archive');
    fs.mkdirSync(unpacked);
    await extractArchive(abs, unpacked, limits, opts.signal);
    return await buildImage(planDirectory(unpacked, selection, limits.maxBlobBytes, 'archive'), { ...opts, store });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function planDirectory(
  dir: string,
  selection: { tag?: string; platform?: Platform; names?: readonly string[]; location: string },
  maxBlobBytes: number,
  form: 'dir' | 'archive',
): ImagePlan {
  if (isOciLayout(dir)) {
    return new OciLayout(dir).plan({ ...selection, kind: form === 'dir' ? 'oci-layout' : 'oci-archive' }, maxBlobBytes);
  }
  if (isDockerArchive(dir)) return planDockerArchive(dir, { ...selection, kind: 'docker-archive' }, maxBlobBytes);
  throw new InvalidImageError(
    selection.location,
    `is not an image: an OCI layout has oci-layout and index.json, a docker-save archive has manifest.json (found: ${listTop(dir)})`,
  );
}

function listTop(dir: string): string {
  const names = fs.readdirSync(dir).slice(0, 8);
  return names.length ? names.join(', ') : 'nothing';
}

/** `myapp:1` → `docker.io/library/myapp:1`; a name without a tag gets `latest`. */
export function normalizeNames(name: string | readonly string[]): string[] {
  const list = typeof name === 'string' ? [name] : [...name];
  return list.map((n) => {
    const ref = parseReference(n);
    const tagged = taggedName(ref);
    if (!tagged || ref.digest) throw new InvalidReferenceError(n, 'a name to give an image needs a tag (or none, for latest) and no digest');
    return canonicalName({ ...ref, digest: undefined });
  });
}
