/**
 * Platforms (`os/architecture[/variant]`) and picking one manifest out of an image index. Zones
 * boot an x86-64 kernel, so the default is linux/amd64.
 */
import { InvalidConfigError } from '../errors';

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

const PART = /^[a-z0-9_.-]{1,32}$/;

/** Parses `linux/amd64`, `linux/arm64/v8`. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PART.test(p))) {
    throw new InvalidConfigError('platform', text, 'OS/ARCH or OS/ARCH/VARIANT in lower case, e.g. linux/amd64 or linux/arm64/v8');
  }
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Spellings that mean the same machine: arm64 is v8 unless said otherwise, x86_64 is amd64. */
export function normalizePlatform(p: Platform): Platform {
  let architecture = p.architecture;
  let variant = p.variant || undefined;
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64';
  if (architecture === 'aarch64') architecture = 'arm64';
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  return variant ? { os: p.os, architecture, variant } : { os: p.os, architecture };
}

/** True when `candidate` can serve `wanted`: same OS and architecture, and the variant if one was asked for. */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  return w.variant === undefined || w.variant === c.variant;
}
