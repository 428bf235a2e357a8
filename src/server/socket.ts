/**
 * A Unix socket only its owner (and an optional group) can connect to, from its first instant: it
 * is bound inside a fresh 0700 directory beside the target, given mode 0600 (0660 and the group
 * when one is named), and only then renamed to its path. An existing socket there is replaced
 * when nothing answers on it, and refused when a server still does.
 */
import { chmodSync, chownSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { InvalidConfigError } from '../errors';
import { runCommand } from '../util/process';

/** The longest path a Unix socket can have on Linux (sun_path, without its NUL). */
export const MAX_SOCKET_PATH = 107;

export interface PrivateSocketOptions {
  /** A group (name or gid) whose members may connect too: the socket becomes 0660 and that group's. */
  group?: string | number;
}

export async function listenPrivately(server: net.Server, socketPath: string, opts: PrivateSocketOptions = {}): Promise<void> {
  const target = path.resolve(socketPath);
  const gid = opts.group === undefined ? undefined : await resolveGroup(opts.group);
  await refuseLiveSocket(target);
  // sun_path holds 107 bytes; the staging name below adds 11 to the directory's.
  const room = MAX_SOCKET_PATH - (path.dirname(target).length + 11);
  if (Buffer.byteLength(target) > MAX_SOCKET_PATH || room < 0) {
    throw new InvalidConfigError('socket', target, `a path of at most ${MAX_SOCKET_PATH} bytes in a directory of at most ${MAX_SOCKET_PATH - 11} (Unix socket paths cannot be longer)`);
  }
  const staging = mkdtempSync(path.join(path.dirname(target), '.s-'));
  const temporary = path.join(staging, 's');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(temporary, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (gid !== undefined) chownSync(temporary, -1, gid);
    chmodSync(temporary, gid === undefined ? 0o600 : 0o660);
    renameSync(temporary, target);
  } catch (err) {
    server.close();
    throw err;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function refuseLiveSocket(target: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = statSync(target).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new InvalidConfigError('socket', target, 'a path that is free or holds a stale socket (this is another kind of file)');
  const answered = await new Promise<boolean>((resolve) => {
    const probe = net.connect(target);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw new InvalidConfigError('socket', target, 'a path no running server listens on (one answers there now)');
  rmSync(target, { force: true });
}

async function resolveGroup(group: string | number): Promise<number> {
  if (typeof group === 'number' || /^\d+$/.test(group)) return Number(group);
  const r = await runCommand('getent', ['group', group], { timeoutMs: 10_000 });
  const gid = r.code === 0 ? Number(r.stdout.split(':')[2]) : NaN;
  if (!Number.isInteger(gid)) throw new InvalidConfigError('group', group, 'a group name or gid that exists on this host');
  return gid;
}
