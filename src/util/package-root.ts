/**
 * The root of this package (the directory holding its package.json), wherever the code runs from:
 * src/ under tap's TypeScript loader, dist/cjs or dist/esm, or an installed node_modules/bulkhead.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && isBulkhead(manifest)) return (cached = dir);
    if (path.dirname(dir) === dir) throw new Error(`bulkhead's package.json not found above ${__dirname}`);
  }
}

/** A path inside the package, e.g. packagePath('kernel-configs'). */
export function packagePath(...parts: string[]): string {
  return path.join(packageRoot(), ...parts);
}

function isBulkhead(manifest: string): boolean {
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'bulkhead';
  } catch {
    return false;
  }
}
