/**
 * Checks of what callers pass, against the protocol's limits, before anything is encoded: a bad
 * value is an InvalidConfigError naming the field, never a frame the agent would refuse.
 */
import { InvalidConfigError } from '../../errors';
import { ARGV_MAX, ENV_MAX, FRAME_MAX, HOSTNAME_MAX, PATH_MAX, SIGNAL_NUMBERS, STRING_MAX, USER_MAX } from './protocol';

function bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function plainString(field: string, v: unknown, max: number, allowed: string): string {
  if (typeof v !== 'string' || v.includes('\0') || bytes(v) > max) throw new InvalidConfigError(field, v, allowed);
  return v;
}

export function checkArgv(argv: unknown): string[] {
  const allowed = `a non-empty array of at most ${ARGV_MAX} strings, each under 64 KiB without NUL, argv[0] non-empty`;
  if (!Array.isArray(argv) || argv.length < 1 || argv.length > ARGV_MAX) throw new InvalidConfigError('argv', argv, allowed);
  argv.forEach((a, i) => plainString(`argv[${i}]`, a, STRING_MAX, allowed));
  if (argv[0] === '') throw new InvalidConfigError('argv[0]', argv[0], allowed);
  return argv as string[];
}

/** env as { NAME: value } or ["NAME=value", ...], returned as the latter. */
export function checkEnv(env: unknown): string[] {
  const allowed = `at most ${ENV_MAX} entries NAME=value (NAME non-empty, without '='), each under 64 KiB without NUL`;
  if (env === undefined) return [];
  const list = Array.isArray(env)
    ? env
    : typeof env === 'object' && env !== null
      ? Object.entries(env as Record<string, unknown>).map(([k, v]) => {
          if (typeof v !== 'string' || k === '' || k.includes('=')) throw new InvalidConfigError(`env.${k}`, v, allowed);
          return `${k}=${v}`;
        })
      : undefined;
  if (!list || list.length > ENV_MAX) throw new InvalidConfigError('env', env, allowed);
  list.forEach((kv, i) => {
    plainString(`env[${i}]`, kv, STRING_MAX, allowed);
    if (!(kv as string).includes('=') || (kv as string).startsWith('=')) throw new InvalidConfigError(`env[${i}]`, kv, allowed);
  });
  return list as string[];
}

export function checkPath(field: string, p: unknown): string {
  const allowed = `an absolute path of at most ${PATH_MAX} bytes without NUL`;
  plainString(field, p, PATH_MAX, allowed);
  if (!(p as string).startsWith('/')) throw new InvalidConfigError(field, p, allowed);
  return p as string;
}

export function checkCwd(cwd: unknown): string {
  return cwd === undefined || cwd === '' ? '' : checkPath('cwd', cwd);
}

export function checkUser(user: unknown): string {
  if (user === undefined) return '';
  return plainString('user', user, USER_MAX, `"name", "uid", "name:group" or "uid:gid", at most ${USER_MAX} bytes`);
}

export function checkHostname(h: unknown): string {
  if (h === undefined) return '';
  const allowed = `a hostname of 1..${HOSTNAME_MAX} bytes (letters, digits, '-', '.')`;
  if (typeof h !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(h) || bytes(h) > HOSTNAME_MAX) {
    throw new InvalidConfigError('hostname', h, allowed);
  }
  return h;
}

export function checkDimension(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 0xffff) {
    throw new InvalidConfigError(field, v, 'an integer 1..65535');
  }
  return v as number;
}

export function checkMode(field: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0o7777) throw new InvalidConfigError(field, v, 'an integer 0..0o7777');
  return v as number;
}

/** A signal name (SIGTERM, TERM) or number 1..64, as its Linux number. */
export function checkSignal(sig: unknown): number {
  if (typeof sig === 'number' && Number.isInteger(sig) && sig >= 1 && sig <= 64) return sig;
  if (typeof sig === 'string') {
    const n = SIGNAL_NUMBERS[sig.startsWith('SIG') ? sig : `SIG${sig}`];
    if (n) return n;
  }
  throw new InvalidConfigError('signal', sig, 'a signal name such as SIGTERM, or a number 1..64');
}

export function checkRequestSize(field: string, payload: Buffer): Buffer {
  if (payload.length > FRAME_MAX) {
    throw new InvalidConfigError(field, `${payload.length} bytes encoded`, `at most ${FRAME_MAX} bytes for the whole request`);
  }
  return payload;
}
