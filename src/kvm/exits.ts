/** Why a vCPU stopped running, in the user's terms. */
import type { NativeExit } from './native';

export type ExitReason =
  | 'hlt'
  | 'shutdown'
  | 'system-event'
  | 'fail-entry'
  | 'internal-error'
  | 'io-error'
  | 'unknown'
  | 'run-failed'
  | 'stopped'
  | 'guest-request'
  | 'device-failure';

/** bh_exit_reason values (native/include/bulkhead.h) by name. */
const REASONS: Record<number, ExitReason> = {
  1: 'hlt',
  2: 'shutdown',
  3: 'system-event',
  4: 'fail-entry',
  5: 'internal-error',
  6: 'io-error',
  7: 'unknown',
  8: 'run-failed',
  9: 'stopped',
  10: 'guest-request',
  11: 'device-failure',
};

/** detail[0] of a 'guest-request' exit (bh_guest_request in bulkhead.h): what the guest asked for. */
export const GUEST_REQUEST = {
  other: 0n,
  powerOff: 1n,
  reboot: 2n,
  resetLine: 3n,
  debugExit: 4n,
} as const;

export interface VmExit {
  vcpu: number;
  /** 'hlt' (HLT without irqchip), 'shutdown' (triple fault), 'stopped' (stop()/destroy() or another vCPU's end), ... */
  reason: ExitReason;
  /** The raw KVM_EXIT_* of the last exit (0 if none). */
  kvmExitReason: number;
  /** Reason-specific values: see bh_exit_reason in bulkhead.h ('guest-request': details[0] is a GUEST_REQUEST code). */
  details: bigint[];
  /** errno for 'run-failed', else 0. */
  errno: number;
  /** Guest RIP when the vCPU left, if it could be read. */
  rip: bigint;
  /** Human text, e.g. "triple fault (KVM_EXIT_SHUTDOWN) at rip 0x1003". */
  message: string;
  /** For 'io-error' caused by a JavaScript handler: what it threw. */
  handlerError?: unknown;
}

export function exitFromNative(e: NativeExit): VmExit {
  return {
    vcpu: e.vcpu,
    reason: REASONS[e.reason] ?? 'unknown',
    kvmExitReason: e.kvmExitReason,
    details: e.detail,
    errno: e.errno,
    rip: e.rip,
    message: e.message,
  };
}
