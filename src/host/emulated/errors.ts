/**
 * The emulated host's failures, told apart by `reason`, so a caller can say "install QEMU" rather
 * than "the host crashed". An abort is an AbortedError (src/errors.ts), never one of these.
 */
import { BulkheadError } from '../../errors';

export type EmulatedHostFailure =
  /** qemu-system-x86_64 is not installed: what the machine lacks. */
  | 'qemu-missing'
  /** The host kernel is not built (or the given file does not exist). */
  | 'kernel-missing'
  /** QEMU started but the agent never answered: the message has the console's tail. */
  | 'boot-failed'
  /** The host was running and QEMU exited. */
  | 'exited'
  /** The control channel broke (a keeper went away, or a protocol violation). */
  | 'channel-lost'
  /** connect(): nothing listens on that socket inside. */
  | 'connect-failed';

export class EmulatedHostError extends BulkheadError {
  constructor(
    readonly reason: EmulatedHostFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('HOST_UNAVAILABLE', message, options);
  }
}

/** A buffered run produced more output than its maxBuffer; the command was killed. */
export class OutputLimitError extends BulkheadError {
  constructor(
    readonly stream: 'stdout' | 'stderr',
    readonly limitBytes: number,
    argv: readonly string[],
  ) {
    super('OUTPUT_LIMIT', `${argv[0]} wrote more than ${limitBytes} bytes to ${stream} (maxBuffer); it was killed. Use spawn() to stream output of any size`);
  }
}
