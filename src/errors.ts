/**
 * Every error bulkhead throws is a BulkheadError with a stable `code`, so callers can branch on
 * `err.code` instead of parsing messages. Messages say what was wrong and what is allowed.
 */

export type BulkheadErrorCode =
  | 'KVM_UNAVAILABLE'
  | 'XEN_UNAVAILABLE'
  | 'INVALID_CONFIG'
  | 'VM_DESTROYED'
  | 'INVALID_STATE'
  | 'GUEST_MEMORY_OUT_OF_RANGE'
  | 'HYPERVISOR_ERROR'
  | 'KERNEL_INVALID'
  | 'KERNEL_BUILD_FAILED'
  | 'HOST_UNAVAILABLE'
  | 'BENCH_RUNNER_UNAVAILABLE'
  | 'BENCH_FAILED'
  | 'NATIVE_ADDON_UNAVAILABLE'
  | 'KERNEL_SOURCE_UNAVAILABLE'
  | 'COMMAND_FAILED'
  | 'ABORTED'
  | 'OUTPUT_LIMIT'
  | 'ZONE_CLOSED'
  | 'ZONE_START_FAILED'
  | 'ZONE_NOT_FOUND'
  | 'AGENT_PROTOCOL_ERROR'
  | 'AGENT_DISCONNECTED'
  | 'AGENT_REQUEST_FAILED'
  | 'SERVER_UNAVAILABLE'
  | 'BAD_REQUEST'
  | 'SERVER_ERROR'
  | ImageErrorCode;

/** The image subsystem's codes (src/image/errors.ts). */
export type ImageErrorCode =
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_REFERENCE_INVALID'
  | 'IMAGE_DIGEST_MISMATCH'
  | 'IMAGE_MEDIA_TYPE_UNSUPPORTED'
  | 'IMAGE_LAYER_HOSTILE'
  | 'IMAGE_INVALID'
  | 'IMAGE_PLATFORM_UNAVAILABLE'
  | 'IMAGE_REGISTRY_ERROR'
  | 'IMAGE_BUILD_FAILED';

export class BulkheadError extends Error {
  readonly code: BulkheadErrorCode;

  constructor(code: BulkheadErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** /dev/kvm cannot be used: `reason` says why (missing, permission, api-version, ...). */
export class KvmUnavailableError extends BulkheadError {
  constructor(
    readonly reason: 'missing' | 'permission' | 'api-version' | 'open-failed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super('KVM_UNAVAILABLE', message, options);
  }
}

/** A configuration field is invalid: names the field, the value given and what is allowed. */
export class InvalidConfigError extends BulkheadError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super('INVALID_CONFIG', `invalid ${field}: ${describeValue(value)}; allowed: ${allowed}`);
  }
}

/** Any use of a VM (or other resource) after destroy(). */
export class DestroyedError extends BulkheadError {
  constructor(what: string, operation: string) {
    super('VM_DESTROYED', `cannot ${operation}: this ${what} has been destroyed`);
  }
}

/** An operation that is not valid in the object's current state (e.g. resume() of a running VM). */
export class InvalidStateError extends BulkheadError {
  constructor(operation: string, state: string, allowedStates: readonly string[]) {
    super(
      'INVALID_STATE',
      `cannot ${operation} while ${state}; allowed when: ${allowedStates.join(', ')}`,
    );
  }
}

/** The caller's AbortSignal fired: `what` says what was stopped. Never a configuration problem. */
export class AbortedError extends BulkheadError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('ABORTED', `aborted while ${what}`, options);
  }
}

export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
