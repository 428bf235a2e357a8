/**
 * Errors of the agent channel. A session ends with exactly one of the first two, and every call
 * pending on it rejects with that same error; the third is the agent's answer to one request.
 */
import { constants as osConstants } from 'node:os';
import { BulkheadError } from '../../errors';

/**
 * The peer broke the protocol (a malformed, oversized or out-of-place frame), or the agent said
 * that we did (`reportedByAgent`). The session is over; the zone itself may still be fine.
 */
export class AgentProtocolError extends BulkheadError {
  constructor(
    readonly detail: string,
    readonly reportedByAgent = false,
  ) {
    super(
      'AGENT_PROTOCOL_ERROR',
      reportedByAgent ? `the agent closed the session: ${detail}` : `the agent broke the protocol: ${detail}`,
    );
  }
}

/** The session ended: closed by this side, by the agent, or the connection failed. */
export class AgentDisconnectedError extends BulkheadError {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('AGENT_DISCONNECTED', `the agent session ended: ${reason}`, options);
  }
}

export type AgentErrorKind = 'protocol' | 'unknown-op' | 'limit' | 'invalid' | 'os' | 'exec' | 'state' | 'cancelled';

const KINDS: Record<number, AgentErrorKind> = {
  1: 'protocol',
  2: 'unknown-op',
  3: 'limit',
  4: 'invalid',
  5: 'os',
  6: 'exec',
  7: 'state',
  8: 'cancelled',
};

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** The agent refused or failed one request (the session goes on). */
export class AgentRequestError extends BulkheadError {
  /** ENOENT, EACCES, ... when the agent reported an errno (Linux numbering). */
  readonly errno: string | undefined;

  constructor(
    readonly operation: string,
    readonly kind: AgentErrorKind,
    readonly errnoNumber: number,
    readonly agentMessage: string,
  ) {
    const errno = errnoNumber ? (ERRNO_NAMES.get(errnoNumber) ?? `errno ${errnoNumber}`) : undefined;
    super('AGENT_REQUEST_FAILED', `${operation}: ${agentMessage}${errno ? ` (${errno})` : ''}`);
    this.errno = errno;
  }

  static kindOf(code: number): AgentErrorKind | undefined {
    return KINDS[code];
  }
}
