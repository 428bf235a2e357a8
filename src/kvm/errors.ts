/**
 * Errors specific to the kvm primitives, and the translation of the addon's errors (which carry the C
 * core's bh_status name and errno) into bulkhead's error classes.
 */
import { BulkheadError, KvmUnavailableError } from '../errors';

/** A guest-physical range that is not (entirely) guest RAM, or not a valid address at all. */
export class GuestMemoryOutOfRangeError extends BulkheadError {
  constructor(
    readonly gpa: bigint | number,
    readonly length: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('GUEST_MEMORY_OUT_OF_RANGE', message, options);
  }
}

/** An error from the C core, as thrown by the addon. */
export interface NativeError extends Error {
  bhStatus?: string;
  errno?: number;
  coreMessage?: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as NativeError).bhStatus === 'string';
}

/** Why /dev/kvm could not be used, from the errno of the failed open/ioctl. */
export function kvmUnavailableReason(errno: number): KvmUnavailableError['reason'] {
  if (errno === 2 /* ENOENT */ || errno === 6 /* ENXIO */ || errno === 19 /* ENODEV */) return 'missing';
  if (errno === 13 /* EACCES */ || errno === 1 /* EPERM */) return 'permission';
  if (errno === 0) return 'api-version';
  return 'open-failed';
}

/** Maps an addon error to a BulkheadError (other errors pass through unchanged). */
export function translateNativeError(err: unknown): unknown {
  if (!isNativeError(err)) return err;
  const errno = err.errno ?? 0;
  const options = { cause: err };
  switch (err.bhStatus) {
    case 'BH_E_UNAVAILABLE':
      return new KvmUnavailableError(kvmUnavailableReason(errno), err.message, options);
    case 'BH_E_STATE':
      return new BulkheadError('INVALID_STATE', err.message, options);
    case 'BH_E_OUT_OF_RANGE':
      return new GuestMemoryOutOfRangeError(0, 0, err.message, options);
    case 'BH_E_INVALID_ARG':
    case 'BH_E_BUSY':
      return new BulkheadError('INVALID_CONFIG', err.message, options);
    default:
      return new BulkheadError('HYPERVISOR_ERROR', err.message, options);
  }
}

/** Runs `fn`, rethrowing addon errors as BulkheadErrors. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw translateNativeError(err);
  }
}

export async function callNativeAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw translateNativeError(err);
  }
}
