/**
 * The zone's failures, each a BulkheadError with a code. A call on a zone that has ended, or that
 * ends while the call is pending, fails at once with ZoneClosedError — no call waits for a zone
 * that will never answer.
 */
import { BulkheadError } from '../errors';
import type { ZoneExit, ZoneState } from './types';

/** The zone is gone (exited, failed, destroyed) or went while the call was pending. */
export class ZoneClosedError extends BulkheadError {
  constructor(
    readonly zone: string,
    operation: string,
    readonly state: ZoneState,
    readonly exit?: ZoneExit,
  ) {
    super(
      'ZONE_CLOSED',
      `cannot ${operation}: zone ${zone} is ${state}${exit ? ` (${exit.reason}${exit.failure ? `: ${exit.failure}` : ''})` : ''}`,
    );
  }
}

/** The zone could not be started: `stage` says where (image, kernel, machine, boot, agent). */
export class ZoneStartError extends BulkheadError {
  constructor(
    readonly stage: 'image' | 'kernel' | 'machine' | 'boot' | 'agent' | 'launch',
    message: string,
    readonly consoleTail?: string,
    options?: { cause?: unknown },
  ) {
    super('ZONE_START_FAILED', message, options);
  }
}

/** No zone by that id, id prefix or name. */
export class ZoneNotFoundError extends BulkheadError {
  constructor(readonly ref: string) {
    super('ZONE_NOT_FOUND', `no zone named or numbered ${JSON.stringify(ref)} on this host (bulkhead ps lists them)`);
  }
}
