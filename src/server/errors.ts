/**
 * The server's own failures: nothing listens where the client looked (or it may not connect), a
 * request the server refused as malformed, and a server-side failure that was not a BulkheadError.
 * Every other error crosses the wire as the class it was thrown as (see ./wire.ts).
 */
import { BulkheadError } from '../errors';

/** No server answers at `address`, or this user may not connect to it; `reason` says which. */
export class ServerUnavailableError extends BulkheadError {
  constructor(
    readonly address: string,
    readonly reason: 'missing' | 'refused' | 'permission' | 'lost' | 'protocol',
    message: string,
    options?: { cause?: unknown },
  ) {
    super('SERVER_UNAVAILABLE', message, options);
  }
}

/** The server refused a request: malformed JSON, a body past its cap, an unknown route or method. */
export class BadRequestError extends BulkheadError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super('BAD_REQUEST', message);
  }
}

/** The server failed with an error that was not a BulkheadError; its message is passed on. */
export class ServerError extends BulkheadError {
  constructor(
    readonly remoteName: string,
    message: string,
  ) {
    super('SERVER_ERROR', message);
  }
}
