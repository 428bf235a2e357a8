/**
 * The kernel-source pin, kernel-configs/source.json: which Debian source package, which version and
 * the .deb's sha256. Kernels are keyed by the pin, so an `apt-get update` that brings a newer
 * linux-source leaves every cached kernel valid; moving to it is a deliberate edit
 * (`bulkhead kernel pin --to VERSION`), reviewed like any other change to the build.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BulkheadError, InvalidConfigError } from '../errors';
import { runCommand } from '../util/process';
import { compareDebianVersions } from './debian-version';
import { kernelConfigsDir } from './fragment';

export interface KernelSourcePin {
  package: string;
  /** Debian version, e.g. 6.12.117-1~deb12u1. */
  version: string;
  /** sha256 of the .deb, as the archive's Packages index lists it. */
  sha256: string;
}

export const PIN_FILE = 'source.json';
export const MOVE_PIN_HINT = 'move the pin with `bulkhead kernel pin --to VERSION` (kernel-configs/README.md)';

export function pinPath(configsDir = kernelConfigsDir()): string {
  return path.join(configsDir, PIN_FILE);
}

export function readPin(file = pinPath()): KernelSourcePin {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new BulkheadError('KERNEL_SOURCE_UNAVAILABLE', `cannot read the kernel-source pin ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const pin = raw as Partial<KernelSourcePin>;
  if (typeof pin.package !== 'string' || !/^[a-z0-9][a-z0-9.+-]+$/.test(pin.package)) {
    throw new InvalidConfigError(`${file}: package`, pin.package, 'a Debian package name');
  }
  if (typeof pin.version !== 'string' || !/^[0-9][A-Za-z0-9.+~:-]*$/.test(pin.version)) {
    throw new InvalidConfigError(`${file}: version`, pin.version, 'a Debian version such as 6.12.117-1~deb12u1');
  }
  if (typeof pin.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(pin.sha256)) {
    throw new InvalidConfigError(`${file}: sha256`, pin.sha256, '64 lowercase hex digits');
  }
  return { package: pin.package, version: pin.version, sha256: pin.sha256 };
}

export interface ArchiveEntry {
  version: string;
  sha256: string;
}

/** The versions of `pkg` that apt's indexes offer now, newest first (empty when apt knows none). */
export async function offeredVersions(pkg: string): Promise<ArchiveEntry[]> {
  const r = await runCommand('apt-cache', ['show', pkg], { timeoutMs: 30_000 }).catch(() => undefined);
  if (!r || r.code !== 0) return [];
  const entries: ArchiveEntry[] = [];
  for (const stanza of r.stdout.split(/\n\s*\n/)) {
    const version = /^Version:\s*(\S+)/m.exec(stanza)?.[1];
    const sha256 = /^SHA256:\s*([0-9a-f]{64})/m.exec(stanza)?.[1];
    if (version && sha256 && !entries.some((e) => e.version === version)) entries.push({ version, sha256 });
  }
  return entries.sort((a, b) => compareDebianVersions(b.version, a.version));
}

/** "offered: 6.12.119-1~deb12u1 (newer than the pin), 6.12.117-1~deb12u1" for error messages. */
export function describeOffered(pin: KernelSourcePin, offered: readonly ArchiveEntry[]): string {
  if (offered.length === 0) return `apt offers no version of ${pin.package} (run apt-get update?)`;
  const words = offered.map((e) => {
    const c = compareDebianVersions(e.version, pin.version);
    return `${e.version}${c > 0 ? ' (newer than the pin)' : c < 0 ? ' (older than the pin)' : ''}`;
  });
  return `apt offers ${words.join(', ')}`;
}

/**
 * Moves the pin to `version` (default: apt's newest), taking the sha256 from apt's index. Returns
 * the new pin. The caller commits kernel-configs/source.json; cached kernels of the old pin stay.
 */
export async function movePin(version: string | undefined, file = pinPath()): Promise<KernelSourcePin> {
  const current = readPin(file);
  const offered = await offeredVersions(current.package);
  const target = version === undefined ? offered[0] : offered.find((e) => e.version === version);
  if (!target) {
    throw new BulkheadError(
      'KERNEL_SOURCE_UNAVAILABLE',
      `cannot pin ${current.package} to ${version ?? 'the newest version'}: ${describeOffered(current, offered)}`,
    );
  }
  const next: KernelSourcePin = { package: current.package, version: target.version, sha256: target.sha256 };
  const previous = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...previous, ...next }, null, 2) + '\n');
  return next;
}
