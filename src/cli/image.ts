/**
 * `bulkhead image import|pull|ls|rm|path`: the image store from the command line. Progress goes
 * to stderr; what a script wants (the digest, the erofs path, the list) goes to stdout.
 */
import {
  familiarName,
  formatBytes,
  importImage,
  listImages,
  pullImage,
  removeImage,
  resolveImage,
  type ImageArtifact,
  type ImageProgress,
  type RegistryAuth,
} from '../image';
import { defineCommand, defineGroup, UsageError } from './args';

const platform = { type: 'string', value: 'OS/ARCH[/VARIANT]', description: 'which platform of a multi-platform image (default linux/amd64)' } as const;

const importCommand = defineCommand({
  name: 'image import',
  summary: 'import an OCI layout directory, an oci-archive tar, or a docker save tar (or dir) into the store',
  args: 'PATH',
  options: {
    name: { type: 'string', multiple: true, value: 'NAME[:TAG]', description: 'name(s) to give the image in the store' },
    tag: { type: 'string', value: 'REF_NAME', description: "which image of the layout's index (org.opencontainers.image.ref.name)" },
    platform,
  },
  positionals: { min: 1, max: 1 },
  run: async ({ values, positionals }) =>
    withProgress('image import', (onProgress, signal) =>
      importImage(positionals[0]!, { name: values.name?.length ? values.name : undefined, tag: values.tag, platform: values.platform, onProgress, signal }),
    ),
});

const pullCommand = defineCommand({
  name: 'image pull',
  summary: 'pull an image from a registry (anonymous or bearer-token auth) and build its erofs',
  args: 'REF',
  options: {
    platform,
    insecure: { type: 'boolean', description: 'plain HTTP (always allowed for localhost and 127.0.0.1)' },
    username: { type: 'string', short: 'u', value: 'USER', description: 'registry user (with --password-stdin)' },
    'password-stdin': { type: 'boolean', description: 'read the registry password from stdin' },
  },
  positionals: { min: 1, max: 1 },
  async run({ values, positionals }) {
    if (values['password-stdin'] && !values.username) throw new UsageError('--password-stdin needs --username', 'image pull');
    const auth: RegistryAuth | undefined = values.username
      ? { username: values.username, password: values['password-stdin'] ? await readStdin() : '' }
      : undefined;
    return withProgress('image pull', (onProgress, signal) =>
      pullImage(positionals[0]!, { platform: values.platform, insecure: values.insecure, auth, onProgress, signal }),
    );
  },
});

const pathCommand = defineCommand({
  name: 'image path',
  summary: 'print the erofs file of an image (busybox is built on first use; others are pulled if missing)',
  args: 'REF',
  options: { platform, insecure: { type: 'boolean', description: 'plain HTTP for a pull' } },
  positionals: { min: 1, max: 1 },
  run: async ({ values, positionals }) =>
    withProgress('image', (onProgress, signal) => resolveImage(positionals[0]!, { platform: values.platform, insecure: values.insecure, onProgress, signal }), true),
});

const lsCommand = defineCommand({
  name: 'image ls',
  summary: 'the images in the store',
  options: { json: { type: 'boolean', description: 'as JSON' } },
  async run({ values }) {
    printList(listImages(), values.json ?? false);
    return 0;
  },
});

const rmCommand = defineCommand({
  name: 'image rm',
  summary: 'remove images (by name or digest) from the store',
  args: 'REF|DIGEST...',
  options: {},
  positionals: { min: 1, max: 1000 },
  async run({ positionals }) {
    for (const ref of positionals) {
      const r = await removeImage(ref);
      for (const n of r.untagged) process.stdout.write(`untagged: ${n}\n`);
      for (const d of r.deleted) process.stdout.write(`deleted: ${d}\n`);
    }
    return 0;
  },
});

export const command = defineGroup('image', 'the image store: OCI images as erofs root filesystems for zones', [
  importCommand,
  pullCommand,
  lsCommand,
  rmCommand,
  pathCommand,
]);

/**
 * Runs one long image operation with its progress on stderr; Ctrl-C (or SIGTERM) aborts it
 * cleanly, so the work dir and any child tools go with it. Prints the digest, or the erofs path.
 */
async function withProgress(
  label: string,
  op: (onProgress: (e: ImageProgress) => void, signal: AbortSignal) => Promise<ImageArtifact>,
  printPath = false,
): Promise<number> {
  const status = new StatusLine(label, process.stderr);
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const artifact = await op((e) => status.show(e), controller.signal);
    status.line(`${artifact.names.join(', ') || '(no name)'} ${artifact.digest} (${formatBytes(artifact.sizeBytes)})`);
    process.stdout.write(`${printPath ? artifact.erofsPath : artifact.digest}\n`);
    return 0;
  } finally {
    status.clear(); // an error, printed by main, then stands on a line of its own
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/**
 * Progress on a terminal: one line rewritten in place (byte counts at most 4 times a second).
 * Elsewhere (logs, CI): one line per phase or layer, never per byte count.
 */
class StatusLine {
  private shown = false;
  private lastKey = '';
  private lastDraw = 0;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream,
  ) {}

  show(e: ImageProgress): void {
    const key = `${e.phase}:${e.layer ?? ''}`;
    const changed = key !== this.lastKey;
    this.lastKey = key;
    if (this.stream.isTTY) {
      const now = Date.now();
      if (!changed && now - this.lastDraw < 250) return;
      this.lastDraw = now;
      const width = this.stream.columns ? this.stream.columns - 1 : 120;
      this.stream.write(`\r\x1b[K${`${this.label}: ${e.message}`.slice(0, width)}`);
      this.shown = true;
    } else if (changed) {
      this.stream.write(`${this.label}: ${e.message}\n`);
    }
  }

  line(text: string): void {
    this.clear();
    this.stream.write(`${this.label}: ${text}\n`);
  }

  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

function printList(images: ImageArtifact[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(images, null, 2) + '\n');
    return;
  }
  const rows = [['NAME', 'DIGEST', 'SIZE', 'SOURCE', 'BUILT']];
  for (const img of images) {
    const names = img.names.length ? img.names : ['<none>'];
    for (const name of names) {
      rows.push([familiarName(name), img.digest.slice(7, 19), formatBytes(img.sizeBytes), img.source.kind, img.builtAt.slice(0, 19).replace('T', ' ')]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) process.stdout.write(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ') + '\n');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}
