/**
 * Xen's errors: XenUnavailableError when this process cannot use Xen at all (its libraries are
 * missing, or this is not dom0), XenCallError when a Xen call failed, with the errno.
 */
import { BulkheadError } from '../errors';

export class XenUnavailableError extends BulkheadError {
  constructor(
    /** The libraries that could not be loaded (empty when they loaded but Xen itself is not reachable). */
    readonly missing: readonly string[],
    message: string,
    options?: { cause?: unknown },
  ) {
    super('XEN_UNAVAILABLE', message, options);
  }
}

export class XenCallError extends BulkheadError {
  constructor(
    /** What was called, e.g. "xc_physinfo". */
    readonly call: string,
    readonly errno: number,
    message: string,
  ) {
    super('HYPERVISOR_ERROR', message);
  }
}

/** A domain id that no running domain has (Xen answered ESRCH). */
export class XenNoSuchDomainError extends BulkheadError {
  constructor(
    readonly domid: number,
    what: string,
  ) {
    super('INVALID_CONFIG', `${what}: no domain ${domid} exists (see xenHostInfo().domains for the running ones)`);
  }
}

/** Grant references that the granting domain has not granted to us (or not with that access). */
export class XenGrantRefError extends BulkheadError {
  constructor(
    readonly domid: number,
    readonly refs: readonly number[],
    readonly errno: number,
    detail: string,
  ) {
    super('INVALID_CONFIG', `cannot map grant reference(s) ${refs.join(', ')} of domain ${domid}: ${detail}; a reference must be one that domain granted to this one`);
  }
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 9: 'EBADF', 11: 'EAGAIN', 13: 'EACCES', 14: 'EFAULT', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE', 71: 'EPROTO', 7: 'E2BIG' };

/** The native layer's Error (.errno, .xenCall) as a XenCallError; anything else unchanged. */
export function xenError(err: unknown): Error {
  const e = err as { errno?: number; xenCall?: string; message?: string };
  if (typeof e?.errno === 'number' && typeof e.xenCall === 'string') {
    const name = ERRNO_NAMES[e.errno] ?? `errno ${e.errno}`;
    return new XenCallError(e.xenCall, e.errno, `${e.message} (${name})`);
  }
  return err as Error;
}

/** Runs a native call, turning its failure into a XenCallError. */
export function callXen<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw xenError(err);
  }
}
