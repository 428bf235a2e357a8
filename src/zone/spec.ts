/**
 * A zone's spec as callers write it, and its validation. Every field is checked before anything
 * is built; a bad one throws InvalidConfigError naming the field, the value and what is allowed.
 *
 * What runs: without `cmd` the zone is a sandbox that waits for exec() until stopped. With
 * `cmd: 'image'` it runs the image's Entrypoint + Cmd, with `cmd: [...]` the image's Entrypoint
 * (or `entrypoint`) followed by those arguments, as Docker does. When that main process ends the
 * zone powers off, unless `keepAlive` keeps it up for more exec() calls.
 */
import { InvalidConfigError } from '../errors';

export interface ZoneSpec {
  /** An image: `busybox` (built in), a registry reference, an OCI layout directory or an archive. */
  image: string;
  /**
   * Pins the image to this manifest digest (`sha256:<64 hex>`), taken from the local store; `image`
   * is then only its name. How the emulated-host backend hands over an image it resolved outside.
   */
  imageDigest?: string;
  /** A zone kernel (vmlinux). Default: the cached `zone` kernel, built on first use. */
  kernel?: string;
  /** Guest RAM in MiB (default 256). */
  memoryMiB?: number;
  /** vCPUs (default 1). */
  vcpus?: number;
  /** The main process: absent = none (a sandbox for exec), 'image' = the image's, or arguments after the entrypoint. */
  cmd?: 'image' | readonly string[];
  /** Replaces the image's Entrypoint (an empty array clears it). */
  entrypoint?: readonly string[];
  /** Added to (and overriding) the image's Env. */
  env?: Readonly<Record<string, string>>;
  /** The main process's working directory (default: the image's WorkingDir, else /). */
  cwd?: string;
  /** `uid`, `uid:gid`, `name` or `name:group`, resolved in the image (default: the image's User, else root). */
  user?: string;
  /** Unique among this host's zones (default: zone-<id>). */
  name?: string;
  /** The zone's hostname (default: its name). */
  hostname?: string;
  labels?: Readonly<Record<string, string>>;
  /** Stay up after the main process ends (default false). */
  keepAlive?: boolean;
  /** The zone's whole lifetime: past it, the zone is stopped (forced) and exits with reason 'timeout'. No default. */
  timeoutMs?: number;
  /** Aborting stops and destroys the zone; a pending create() rejects with an AbortedError. */
  signal?: AbortSignal;
}

export interface ValidatedZoneSpec {
  image: string;
  imageDigest?: string;
  kernel?: string;
  memoryMiB: number;
  vcpus: number;
  cmd?: 'image' | string[];
  entrypoint?: string[];
  env: Record<string, string>;
  cwd?: string;
  user?: string;
  name?: string;
  hostname?: string;
  labels: Record<string, string>;
  keepAlive: boolean;
  timeoutMs?: number;
}

export const ZONE_DEFAULTS = { memoryMiB: 256, vcpus: 1 } as const;
/** The smallest zone the zone kernel boots in with room for the agent and a small workload. */
export const MIN_ZONE_MEMORY_MIB = 32;
export const MAX_ZONE_VCPUS = 64;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const HOSTNAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const USER = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KNOWN = [
  'image', 'imageDigest', 'kernel', 'memoryMiB', 'vcpus', 'cmd', 'entrypoint', 'env', 'cwd', 'user', 'name', 'hostname', 'labels',
  'keepAlive', 'timeoutMs', 'signal',
] as const;

/**
 * Checks a spec against the limits of the machine that will run it (`hostMemoryMiB`, `hostCpus`),
 * and returns it with the defaults filled in. `signal` is taken out (it is not data).
 */
export function validateZoneSpec(spec: unknown, limits: { hostMemoryMiB: number; hostCpus: number }): ValidatedZoneSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new InvalidConfigError('spec', spec, 'an object { image, memoryMiB?, vcpus?, cmd?, ... }');
  }
  const s = spec as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!(KNOWN as readonly string[]).includes(key)) throw new InvalidConfigError(key, s[key], `no such field; known: ${KNOWN.join(', ')}`);
  }
  if (typeof s.image !== 'string' || s.image.trim() === '' || s.image.length > 4096) {
    throw new InvalidConfigError('image', s.image, "an image reference such as 'busybox', 'localhost:5000/app:1', or a path");
  }
  if (s.imageDigest !== undefined && (typeof s.imageDigest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(s.imageDigest))) {
    throw new InvalidConfigError('imageDigest', s.imageDigest, 'a manifest digest sha256:<64 lowercase hex>, or absent');
  }
  if (s.kernel !== undefined && (typeof s.kernel !== 'string' || s.kernel === '')) {
    throw new InvalidConfigError('kernel', s.kernel, 'the path of a zone vmlinux, or absent for the cached zone kernel');
  }
  const memoryMiB = s.memoryMiB ?? ZONE_DEFAULTS.memoryMiB;
  if (!isInt(memoryMiB, MIN_ZONE_MEMORY_MIB, limits.hostMemoryMiB)) {
    throw new InvalidConfigError('memoryMiB', memoryMiB, `an integer from ${MIN_ZONE_MEMORY_MIB} to ${limits.hostMemoryMiB} (this host's memory in MiB)`);
  }
  const maxVcpus = Math.min(MAX_ZONE_VCPUS, limits.hostCpus);
  const vcpus = s.vcpus ?? ZONE_DEFAULTS.vcpus;
  if (!isInt(vcpus, 1, maxVcpus)) throw new InvalidConfigError('vcpus', vcpus, `an integer from 1 to ${maxVcpus} (this host's CPUs)`);
  let cmd: 'image' | string[] | undefined;
  if (s.cmd === 'image') cmd = 'image';
  else if (s.cmd !== undefined) cmd = argv('cmd', s.cmd, false);
  const entrypoint = s.entrypoint === undefined ? undefined : argv('entrypoint', s.entrypoint, true);
  const env = stringMap('env', s.env, (k) => ENV_KEY.test(k), 'variable names ([A-Za-z_][A-Za-z0-9_]*) with string values');
  for (const [k, v] of Object.entries(env)) if (v.includes('\0')) throw new InvalidConfigError(`env.${k}`, v, 'a string without NUL bytes');
  if (s.cwd !== undefined && (typeof s.cwd !== 'string' || !s.cwd.startsWith('/') || s.cwd.includes('\0') || s.cwd.length > 4096)) {
    throw new InvalidConfigError('cwd', s.cwd, 'an absolute path inside the zone');
  }
  if (s.user !== undefined && (typeof s.user !== 'string' || !USER.test(s.user))) {
    throw new InvalidConfigError('user', s.user, "'uid', 'uid:gid', 'name' or 'name:group'");
  }
  if (s.name !== undefined && (typeof s.name !== 'string' || !NAME.test(s.name))) {
    throw new InvalidConfigError('name', s.name, '1-63 letters, digits, _ . - starting with a letter or digit');
  }
  if (s.hostname !== undefined && (typeof s.hostname !== 'string' || !HOSTNAME.test(s.hostname))) {
    throw new InvalidConfigError('hostname', s.hostname, 'a hostname label: 1-63 letters, digits and -');
  }
  const labels = stringMap('labels', s.labels, (k) => k.length > 0 && k.length <= 128, 'keys of 1-128 characters with string values');
  if (s.keepAlive !== undefined && typeof s.keepAlive !== 'boolean') throw new InvalidConfigError('keepAlive', s.keepAlive, 'true or false');
  if (s.timeoutMs !== undefined && !(typeof s.timeoutMs === 'number' && Number.isFinite(s.timeoutMs) && s.timeoutMs > 0)) {
    throw new InvalidConfigError('timeoutMs', s.timeoutMs, 'a positive number of milliseconds, or absent for no deadline');
  }
  if (s.signal !== undefined && !(s.signal instanceof AbortSignal)) throw new InvalidConfigError('signal', s.signal, 'an AbortSignal');
  return {
    image: s.image,
    imageDigest: s.imageDigest as string | undefined,
    kernel: s.kernel as string | undefined,
    memoryMiB: memoryMiB as number,
    vcpus: vcpus as number,
    cmd,
    entrypoint,
    env,
    cwd: s.cwd as string | undefined,
    user: s.user as string | undefined,
    name: s.name as string | undefined,
    hostname: s.hostname as string | undefined,
    labels,
    keepAlive: (s.keepAlive as boolean | undefined) ?? false,
    timeoutMs: s.timeoutMs as number | undefined,
  };
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function argv(field: string, v: unknown, allowEmpty: boolean): string[] {
  if (!Array.isArray(v) || (!allowEmpty && v.length === 0) || v.length > 4096 || v.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    throw new InvalidConfigError(field, v, `${allowEmpty ? 'an' : 'a non-empty'} array of strings without NUL bytes`);
  }
  return [...(v as string[])];
}

function stringMap(field: string, v: unknown, keyOk: (k: string) => boolean, allowed: string): Record<string, string> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidConfigError(field, v, `an object of ${allowed}`);
  for (const [k, value] of Object.entries(v)) {
    if (!keyOk(k) || typeof value !== 'string') throw new InvalidConfigError(`${field}.${k}`, value, allowed);
  }
  return { ...(v as Record<string, string>) };
}
