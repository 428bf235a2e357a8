/**
 * The staging directory that layers are applied into, and the only way layer code touches it.
 * Paths from a layer are resolved one component at a time against the real tree: a symlink in a
 * parent component is followed as if the staging dir were `/` (an absolute target starts again at
 * the root), so nothing a layer names can reach outside; a link whose `..` would climb above the
 * root is refused as hostile. The last
 * component is never followed: it is the name being created, replaced or removed.
 *
 * We are the only writer of this directory while a build holds its lock, so what we lstat is what
 * we then change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostileLayerError } from './errors';

export class StagingRoot {
  constructor(
    readonly dir: string,
    private readonly maxSymlinkHops: number,
  ) {}

  /** The absolute path of resolved components (which contain no symlinks and no `..`). */
  abs(components: readonly string[]): string {
    return components.length === 0 ? this.dir : path.join(this.dir, ...components);
  }

  /**
   * Resolves `components` inside the root. Symlinks met on the way are followed within the root;
   * the last one is followed only if `followLast`. Missing components are kept as they are (the
   * caller decides whether a missing path is an error). `layer`/`entry` name the culprit in errors.
   */
  resolve(components: readonly string[], opts: { followLast: boolean; layer: string; entry: string }): string[] {
    const resolved: string[] = [];
    const queue = [...components];
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        // Only symlink targets bring `..` here (entry names with `..` are refused before). In a
        // chroot `..` at the root stays there; a link that tries to climb out is an attack.
        if (resolved.length === 0) {
          throw new HostileLayerError(opts.layer, opts.entry, 'a symlink on the way climbs above the root (..)');
        }
        resolved.pop();
        continue;
      }
      const isLast = queue.length === 0;
      const candidate = this.abs([...resolved, part]);
      const st = lstatOrUndefined(candidate);
      if (st?.isSymbolicLink() && (!isLast || opts.followLast)) {
        if (++hops > this.maxSymlinkHops) {
          throw new HostileLayerError(opts.layer, opts.entry, `more than ${this.maxSymlinkHops} symlinks on the way (a loop?)`);
        }
        const target = fs.readlinkSync(candidate);
        if (target.startsWith('/')) resolved.length = 0;
        queue.unshift(...target.split('/'));
        continue;
      }
      if (st && !isLast && !st.isDirectory()) {
        throw new HostileLayerError(opts.layer, opts.entry, `/${[...resolved, part].join('/')} is not a directory`);
      }
      resolved.push(part);
    }
    return resolved;
  }

  /**
   * Resolves the parent of a layer entry and creates missing directories on the way (0755,
   * root-owned, as tar does). Returns the resolved parent components.
   */
  ensureParent(parentComponents: readonly string[], layer: string, entry: string): string[] {
    const parent = this.resolve(parentComponents, { followLast: true, layer, entry });
    for (let i = 1; i <= parent.length; i++) {
      const dir = this.abs(parent.slice(0, i));
      const st = lstatOrUndefined(dir);
      if (!st) {
        fs.mkdirSync(dir);
        fs.chmodSync(dir, 0o755);
      } else if (!st.isDirectory()) {
        throw new HostileLayerError(layer, entry, `/${parent.slice(0, i).join('/')} is not a directory`);
      }
    }
    return parent;
  }

  /** Removes whatever is at `components` (a file, a link, a whole tree); symlinks are removed, not followed. */
  remove(components: readonly string[]): void {
    if (components.length === 0) throw new Error('refusing to remove the staging root');
    fs.rmSync(this.abs(components), { recursive: true, force: true });
  }
}

export function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
