/**
 * How errors cross the wire: a BulkheadError becomes `{ error: { name, code, message, ...fields } }`
 * with an HTTP status chosen by its code, and the client rebuilds it as the same class with the same
 * fields (InvalidConfigError keeps its field, ZoneClosedError its state and exit), so code that
 * branches on `instanceof` or `err.code` works the same against a local zone and a served one.
 */
import { AbortedError, BulkheadError, DestroyedError, describeValue, InvalidConfigError, InvalidStateError, KvmUnavailableError } from '../errors';
import { EmulatedHostError, OutputLimitError } from '../host/emulated/errors';
import { CommandFailedError } from '../util/process';
import { ZoneClosedError, ZoneNotFoundError, ZoneStartError } from '../zone/errors';
import { BadRequestError, ServerError, ServerUnavailableError } from './errors';

export interface WireError {
  name: string;
  code: string;
  message: string;
  [field: string]: unknown;
}

/** The classes rebuilt by name; any other BulkheadError comes back as a BulkheadError with its code and name. */
const CLASSES: Record<string, { prototype: object }> = {
  AbortedError,
  BadRequestError,
  CommandFailedError,
  DestroyedError,
  EmulatedHostError,
  InvalidConfigError,
  InvalidStateError,
  KvmUnavailableError,
  OutputLimitError,
  ServerError,
  ServerUnavailableError,
  ZoneClosedError,
  ZoneNotFoundError,
  ZoneStartError,
};

const STATUS: Partial<Record<string, number>> = {
  INVALID_CONFIG: 400,
  BAD_REQUEST: 400,
  ZONE_NOT_FOUND: 404,
  ZONE_CLOSED: 409,
  INVALID_STATE: 409,
  VM_DESTROYED: 409,
  ABORTED: 409,
  OUTPUT_LIMIT: 413,
  KVM_UNAVAILABLE: 503,
  HOST_UNAVAILABLE: 503,
  SERVER_UNAVAILABLE: 503,
};

const SKIP = new Set(['stack', 'cause', 'name', 'code', 'message']);

export function errorToWire(err: unknown): { status: number; error: WireError } {
  if (err instanceof BadRequestError) return { status: err.status, error: { name: err.name, code: err.code, message: err.message, status: err.status } };
  if (!(err instanceof BulkheadError)) {
    const e = err instanceof Error ? err : new Error(String(err));
    return { status: 500, error: { name: 'ServerError', code: 'SERVER_ERROR', message: e.message, remoteName: e.name } };
  }
  const error: WireError = { name: err.name, code: err.code, message: err.message };
  for (const [key, value] of Object.entries(err)) {
    if (SKIP.has(key) || typeof value === 'function') continue;
    error[key] = jsonSafe(value);
  }
  return { status: STATUS[err.code] ?? 500, error };
}

/** The error a wire error stands for, as its own class when known. */
export function errorFromWire(wire: unknown): BulkheadError {
  if (typeof wire !== 'object' || wire === null || typeof (wire as WireError).message !== 'string') {
    return new ServerError('unknown', `the server sent an error this client cannot read: ${describeValue(wire).slice(0, 200)}`);
  }
  const { name, code, message, ...fields } = wire as WireError;
  const cls = typeof name === 'string' && Object.hasOwn(CLASSES, name) ? CLASSES[name]! : BulkheadError;
  // Built without its constructor (whose message would be composed again from parts the wire does
  // not carry); the prototype, fields and message are the original's.
  const err = Object.create(cls.prototype) as BulkheadError;
  Error.captureStackTrace(err, errorFromWire);
  Object.defineProperty(err, 'message', { value: message, writable: true, configurable: true, enumerable: false });
  Object.assign(err, fields, { code: typeof code === 'string' ? code : 'SERVER_ERROR', name: typeof name === 'string' ? name : 'BulkheadError' });
  return err;
}

function jsonSafe(value: unknown): unknown {
  if (value === undefined || value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return `${value}n`;
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    return describeValue(value);
  }
}
