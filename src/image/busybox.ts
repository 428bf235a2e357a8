/**
 * The default image, `busybox`: Debian's static busybox (package busybox-static) with its applet
 * symlinks, /etc/passwd and /etc/group for root and nobody, /tmp, /root, PATH and `sh` as the
 * command. Built on first use, so a zone needs no registry.
 *
 * It goes through the same pipeline as any image: we write one layer tar (deterministic: fixed
 * mtimes and owners) and a config, and the store key is the digest of a manifest over them. A
 * different busybox binary (a Debian update) therefore makes a different image; the same one is
 * found in the store.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tarStream from 'tar-stream';
import { runCommand } from '../util/process';
import { buildImage, type BuildOptions } from './build';
import { sha256 } from './digest';
import { ImageBuildError } from './errors';
import { parseImageConfig } from './manifest';
import { MEDIA } from './media-types';
import { canonicalName, parseReference } from './reference';
import { ImageStore, type ImageArtifact } from './store';

export const BUSYBOX_IMAGE_NAME = canonicalName(parseReference('busybox'));
/** Bump when the contents below change, so the key changes with them. */
const BUSYBOX_RECIPE = 1;
const DEFAULT_BUSYBOX = '/bin/busybox';
const EPOCH = new Date(0);
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface BusyboxImageOptions extends BuildOptions {
  /** The static busybox binary (default /bin/busybox from busybox-static). */
  readonly busybox?: string;
}

/** True for the names that mean the default image: `busybox`, `busybox:latest`, `docker.io/library/busybox:latest`. */
export function isDefaultImageName(reference: string): boolean {
  try {
    const ref = parseReference(reference);
    return ref.digest === undefined && canonicalName(ref) === BUSYBOX_IMAGE_NAME;
  } catch {
    return false;
  }
}

export async function busyboxImage(opts: BusyboxImageOptions = {}): Promise<ImageArtifact> {
  const store = opts.store ?? new ImageStore();
  const binary = opts.busybox ?? DEFAULT_BUSYBOX;
  const content = readStaticBusybox(binary);
  const version = await busyboxVersion(binary);
  const applets = await appletPaths(binary);
  const layer = await layerTar(content, applets);
  const diffId = sha256(layer);
  const rawConfig = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Env: [PATH_ENV],
        Cmd: ['sh'],
        WorkingDir: '/',
        Labels: { 'org.opencontainers.image.title': 'busybox', 'org.opencontainers.image.version': version, 'io.bulkhead.image.source': 'debian busybox-static' },
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created_by: `bulkhead busybox recipe ${BUSYBOX_RECIPE} from ${binary}` }],
    }),
  );
  const configDigest = sha256(rawConfig);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: rawConfig.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffId, size: layer.length }],
  });
  return buildImage(
    {
      digest: sha256(manifest),
      source: { kind: 'busybox-static', location: binary, reference: 'busybox:latest' },
      rawConfig,
      configDigest,
      parsed: parseImageConfig(rawConfig, 'busybox image config'),
      layers: [
        {
          name: 'busybox layer',
          digest: diffId,
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          size: layer.length,
          fetch: async (ctx) => {
            const file = path.join(ctx.workDir, 'busybox-layer.tar');
            fs.writeFileSync(file, layer);
            return { file, temporary: true };
          },
        },
      ],
      names: [BUSYBOX_IMAGE_NAME],
    },
    { ...opts, store },
  );
}

function readStaticBusybox(binary: string): Buffer {
  let content: Buffer;
  try {
    content = fs.readFileSync(binary);
  } catch {
    throw new ImageBuildError(`the default busybox image needs ${binary}: install Debian package busybox-static`);
  }
  if (!isStaticElf(content)) throw new ImageBuildError(`${binary} is not a static ELF executable: install Debian package busybox-static (the busybox package is dynamic)`);
  return content;
}

/** An ELF64 executable with no PT_INTERP program header (so it needs no loader in the image). */
export function isStaticElf(b: Buffer): boolean {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return false;
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  if (phentsize < 56 || phoff + phnum * phentsize > b.length) return false;
  for (let i = 0; i < phnum; i++) {
    if (b.readUInt32LE(phoff + i * phentsize) === 3) return false; // PT_INTERP
  }
  return true;
}

async function busyboxVersion(binary: string): Promise<string> {
  const r = await runCommand(binary, [], { timeoutMs: 10_000 });
  const m = /BusyBox (v[^\s]+)/.exec(r.stdout + r.stderr);
  return m ? m[1]! : 'unknown';
}

async function appletPaths(binary: string): Promise<string[]> {
  const r = await runCommand(binary, ['--list-full'], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new ImageBuildError(`${binary} --list-full failed: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(?:(?:bin|sbin|usr\/bin|usr\/sbin)\/)?[^/]+$/.test(l) && l !== 'bin/busybox')
    .sort();
}

async function layerTar(busybox: Buffer, applets: readonly string[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const base = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: EPOCH };
  const dir = (name: string, mode = 0o755): void => void pack.entry({ ...base, name, type: 'directory', mode });
  const file = (name: string, content: Buffer | string, mode = 0o644): void => void pack.entry({ ...base, name, type: 'file', mode }, content);
  for (const d of ['bin', 'dev', 'etc', 'home', 'proc', 'run', 'sbin', 'sys', 'usr', 'usr/bin', 'usr/sbin', 'usr/local', 'usr/local/bin', 'var']) dir(d);
  dir('root', 0o700);
  dir('tmp', 0o1777);
  dir('var/tmp', 0o1777);
  file('bin/busybox', busybox, 0o755);
  for (const applet of applets) pack.entry({ ...base, name: applet, type: 'symlink', linkname: '/bin/busybox', mode: 0o777 });
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  file('etc/group', 'root:x:0:\nnobody:x:65534:\n');
  file('etc/hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost\n');
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}
