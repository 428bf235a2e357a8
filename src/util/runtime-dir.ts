/**
 * Where bulkhead keeps live state — sockets, pid files, logs of running zones and hosts:
 * $BULKHEAD_RUNTIME_DIR, else $XDG_RUNTIME_DIR/bulkhead, else /run/bulkhead for root, else
 * /tmp/bulkhead-<uid>. Created 0700, so only its owner reaches what is inside.
 */
import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function runtimeRoot(): string {
  const explicit = process.env.BULKHEAD_RUNTIME_DIR;
  if (explicit) return path.resolve(explicit);
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'bulkhead');
  const uid = os.userInfo().uid;
  return uid === 0 ? '/run/bulkhead' : path.join(os.tmpdir(), `bulkhead-${uid}`);
}

/** A directory under the runtime root, created 0700 with its parents. */
export function runtimeDir(...parts: string[]): string {
  const dir = path.join(runtimeRoot(), ...parts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
