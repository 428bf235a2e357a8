/**
 * Where bulkhead keeps what it downloads and builds: ~/.cache/bulkhead (or $XDG_CACHE_HOME/bulkhead,
 * or $BULKHEAD_CACHE_DIR). Everything in it is written to a temporary name first and renamed
 * into place, so a reader never sees half a file and an interrupted writer leaves only litter
 * that the next run ignores or reuses.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function cacheRoot(): string {
  if (process.env.BULKHEAD_CACHE_DIR) return path.resolve(process.env.BULKHEAD_CACHE_DIR);
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'bulkhead');
}

export function cacheDir(...parts: string[]): string {
  const dir = path.join(cacheRoot(), ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A name unique to this process and call, for temporary siblings of a final path. */
export function tempName(base: string): string {
  return `.tmp-${base}-${process.pid}-${Date.now().toString(36)}`;
}

/** Writes a file atomically (temp file beside it, then rename). */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const tmp = path.join(path.dirname(file), tempName(path.basename(file)));
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/**
 * Renames a finished temp directory into place. If another process got there first (same key,
 * same content by construction), keeps theirs and removes ours. Returns true if ours was used.
 */
export function publishDir(tmp: string, final: string): boolean {
  try {
    renameSync(tmp, final);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      rmSync(tmp, { recursive: true, force: true });
      return false;
    }
    throw err;
  }
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
