/**
 * HTTP requests to a zone server over any connection factory: a Unix socket here, or the emulated
 * host's connect() to a socket inside it. One connection per request (no pooling), so a stream that
 * runs for hours holds its own connection and nothing else waits behind it. A failure to reach the
 * server is a ServerUnavailableError; an error reply is rebuilt as the error the server threw.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { AbortedError, BulkheadError } from '../errors';
import { ServerUnavailableError } from './errors';
import { errorFromWire } from './wire';

/** Opens a new connection to the server; called once per request. */
export type Connector = () => Duplex;

/** Where a client connects, as a socket path or a connection factory (with a name for messages). */
export type ServerAddress = string | Endpoint;

export interface Endpoint {
  connect: Connector;
  describe: string;
  /**
   * How the server ended, when whoever started it knows (an exit status and its last stderr lines):
   * added to the failure of zones that lost it, so "its server went away" says why.
   */
  lastWords?: () => string | undefined;
}

export function endpointOf(address: ServerAddress | Connector): Endpoint {
  if (typeof address === 'string') return { connect: () => net.connect(address), describe: address };
  if (typeof address === 'function') return { connect: address, describe: 'the zone server' };
  return address;
}

export interface RequestOptions {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** A JSON value, or a stream / bytes sent as they are. */
  json?: unknown;
  body?: Buffer | string | Readable;
  signal?: AbortSignal;
  /** What the request is for, in error messages ("list zones"). */
  what: string;
}

/** Sends a request and resolves with the response once its status is 2xx; other statuses reject with the server's error. */
export function request(endpoint: Endpoint, opts: RequestOptions): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new AbortedError(opts.what));
      return;
    }
    const headers: Record<string, string> = {};
    let payload: Buffer | string | Readable | undefined = opts.body;
    if (opts.json !== undefined) {
      payload = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) headers['content-length'] = String(Buffer.byteLength(payload));
    const req = http.request({
      method: opts.method,
      path: opts.path,
      headers: { host: 'bulkhead', ...headers },
      createConnection: () => endpoint.connect() as net.Socket,
      signal: opts.signal,
    });
    req.once('error', (err) => reject(transportError(endpoint, opts, err)));
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        resolve(res);
        return;
      }
      readAll(res).then(
        (body) => reject(errorFromBody(body, status)),
        (err: Error) => reject(transportError(endpoint, opts, err)),
      );
    });
    if (payload === undefined || typeof payload === 'string' || Buffer.isBuffer(payload)) req.end(payload);
    else {
      payload.once('error', (err) => req.destroy(err));
      payload.pipe(req);
    }
  });
}

/** A request whose reply is JSON (or 204: undefined). */
export async function requestJson<T>(endpoint: Endpoint, opts: RequestOptions): Promise<T> {
  const res = await request(endpoint, opts);
  let body: Buffer;
  try {
    body = await readAll(res);
  } catch (err) {
    throw transportError(endpoint, opts, err as Error);
  }
  if (res.statusCode === 204 || body.length === 0) return undefined as T;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw new ServerUnavailableError(endpoint.describe, 'protocol', `${endpoint.describe} answered ${opts.what} with something other than JSON`);
  }
}

/** The values of an NDJSON reply, one per line, as they come. */
export async function* ndjson<T>(res: http.IncomingMessage, onError: (err: Error) => Error): AsyncGenerator<T> {
  let rest = '';
  res.setEncoding('utf8');
  try {
    for await (const chunk of res as AsyncIterable<string>) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim()) yield JSON.parse(line) as T;
      }
    }
  } catch (err) {
    throw onError(err as Error);
  }
  if (!res.complete) throw onError(new Error('the stream was cut before its end'));
}

export function readAll(res: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('end', () => {
      if ((res as http.IncomingMessage).complete === false) reject(new Error('the reply was cut before its end'));
      else resolve(Buffer.concat(chunks));
    });
    res.once('error', reject);
    res.once('close', () => {
      if (!res.readableEnded) reject(new Error('the reply was cut before its end'));
    });
  });
}

export function errorFromBody(body: Buffer, status: number): BulkheadError {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: unknown };
    if (parsed && typeof parsed === 'object' && parsed.error) return errorFromWire(parsed.error);
  } catch {
    // not JSON: described below
  }
  return errorFromWire({ name: 'ServerError', code: 'SERVER_ERROR', message: `the server answered ${status}: ${body.toString('utf8').slice(0, 200)}` });
}

/** A connection that failed, was refused or was cut, as a ServerUnavailableError (an abort stays an AbortedError). */
export function transportError(endpoint: Endpoint, opts: Pick<RequestOptions, 'what' | 'signal'>, err: Error): BulkheadError {
  if (opts.signal?.aborted || err.name === 'AbortError') return new AbortedError(opts.what, { cause: err });
  if (err instanceof ServerUnavailableError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const reason = code === 'ENOENT' ? 'missing' : code === 'ECONNREFUSED' ? 'refused' : code === 'EACCES' || code === 'EPERM' ? 'permission' : 'lost';
  const why = {
    missing: 'no server socket there',
    refused: 'nothing listens there',
    permission: 'this user may not connect (the socket is its owner’s only)',
    lost: 'the connection was lost',
    protocol: 'the server broke the protocol',
  }[reason];
  return new ServerUnavailableError(endpoint.describe, reason, `cannot ${opts.what}: ${endpoint.describe}: ${why} (${err.message})`, { cause: err });
}
