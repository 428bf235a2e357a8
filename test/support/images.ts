// OCI images for zone tests, built with umoci from Debian's static busybox: two layers, the second
// with a whiteout, an opaque directory and a hard link, and a config that sets Env, WorkingDir and
// User (uid 4321, named in the image's own /etc/passwd).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, linkSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

function umoci(args: string[]): void {
  const r = spawnSync('umoci', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`umoci ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

export interface ConfiguredImage {
  layout: string;
  env: Record<string, string>;
  cwd: string;
  uid: number;
}

export function configuredLayout(dir: string): ConfiguredImage {
  const layout = path.join(dir, 'layout');
  const bundle = path.join(dir, 'bundle');
  const image = `${layout}:test`;
  umoci(['init', '--layout', layout]);
  umoci(['new', '--image', image]);
  umoci(['unpack', '--image', image, bundle]);
  const root = path.join(bundle, 'rootfs');
  // Layer 1: busybox, users, and directories the next layer changes.
  for (const d of ['bin', 'etc', 'tmp', 'srv', 'data/gone', 'data/opaque', 'root']) mkdirSync(path.join(root, d), { recursive: true });
  chmodSync(path.join(root, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
  chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'ls', 'cat', 'echo', 'id', 'pwd', 'stat', 'sleep', 'env']) symlinkSync('busybox', path.join(root, 'bin', applet));
  writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:4321:4321:app:/srv:/bin/sh\n');
  writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\napp:x:4321:\n');
  writeFileSync(path.join(root, 'data', 'gone', 'file'), 'removed by layer 2\n');
  writeFileSync(path.join(root, 'data', 'opaque', 'old'), 'hidden by layer 2\n');
  umoci(['repack', '--image', image, bundle]);
  // Layer 2: a whiteout, an opaque directory, a hard link, a setuid file owned by app.
  rmSync(path.join(root, 'data', 'gone'), { recursive: true });
  rmSync(path.join(root, 'data', 'opaque'), { recursive: true });
  mkdirSync(path.join(root, 'data', 'opaque'));
  writeFileSync(path.join(root, 'data', 'opaque', 'new'), 'from layer 2\n');
  writeFileSync(path.join(root, 'data', 'original'), 'linked\n');
  linkSync(path.join(root, 'data', 'original'), path.join(root, 'data', 'hardlink'));
  writeFileSync(path.join(root, 'srv', 'tool'), '#!/bin/sh\n');
  spawnSync('chown', ['4321:4321', path.join(root, 'srv'), path.join(root, 'srv', 'tool')]);
  chmodSync(path.join(root, 'srv', 'tool'), 0o4755); // after chown, which clears the setuid bit
  umoci(['repack', '--image', image, bundle]);
  const env = { GREETING: 'hello-from-image', APP_MODE: 'test' };
  umoci([
    'config', '--image', image,
    '--config.env', `GREETING=${env.GREETING}`, '--config.env', `APP_MODE=${env.APP_MODE}`,
    '--config.env', 'PATH=/bin',
    '--config.workingdir', '/srv', '--config.user', 'app',
    '--config.cmd', 'sh',
  ]);
  rmSync(bundle, { recursive: true, force: true });
  return { layout, env, cwd: '/srv', uid: 4321 };
}
