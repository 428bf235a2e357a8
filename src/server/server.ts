/**
 * The Zone API over HTTP/1.1 on a Unix socket (see ./API.md): JSON requests and replies, NDJSON
 * streams for events and logs, streamed file bodies, exec as an upgraded framed stream, and
 * Prometheus metrics. It serves a ZoneManager, so one implementation serves `bulkhead serve` (zones
 * it creates) and each zone's own api.sock (one zone made elsewhere).
 *
 * A bad request never takes the server down: malformed JSON and oversized bodies get a 4xx with a
 * typed error, handlers' failures are answered as typed errors, and a stream whose client went
 * away is closed on our side.
 */
import * as http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { rmSync } from 'node:fs';
import { once } from 'node:events';
import { InvalidConfigError } from '../errors';
import type { Zone } from '../zone/zone';
import type { ZoneSpec } from '../zone/spec';
import { BadRequestError } from './errors';
import { EXEC_PROTOCOL } from './exec-frames';
import { serveExec } from './exec-server';
import type { ZoneManager } from './manager';
import { PROMETHEUS_CONTENT_TYPE, prometheusText } from './prometheus';
import { listenPrivately } from './socket';
import { errorToWire } from './wire';

/** JSON bodies past this are refused with 413 (file bodies are streamed and have no cap). */
export const MAX_JSON_BODY = 1024 * 1024;
/** After refusing a body we read (and drop) what the client still sends for this long, so it sees our answer. */
const DRAIN_MS = 5_000;
export const API_VERSION = 1;

export interface ZoneServerOptions {
  manager: ZoneManager;
  /** The Unix socket to listen on; created 0600 (0660 with `group`). */
  socket: string;
  group?: string | number;
  maxJsonBody?: number;
}

type Handler = (ctx: Context) => Promise<void>;

interface Context {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
}

export class ZoneServer implements AsyncDisposable {
  private readonly http: http.Server;
  private readonly upgraded = new Set<Duplex>();
  /** The AbortSignal behind each zone this server created: POST /zones/:ref/abort fires it. */
  private readonly aborters = new Map<string, AbortController>();
  private closed = false;

  private constructor(
    private readonly manager: ZoneManager,
    readonly socketPath: string,
    private readonly maxJsonBody: number,
  ) {
    this.http = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 5_000 });
    this.http.on('request', (req, res) => void this.handle(req, res));
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.http.on('clientError', (_err, socket: Duplex) => {
      if (socket.writable) socket.end(jsonResponse(400, errorToWire(new BadRequestError(400, 'malformed HTTP request')).error));
      else socket.destroy();
    });
  }

  static async listen(opts: ZoneServerOptions): Promise<ZoneServer> {
    const server = new ZoneServer(opts.manager, opts.socket, opts.maxJsonBody ?? MAX_JSON_BODY);
    await listenPrivately(server.http, opts.socket, { group: opts.group });
    return server;
  }

  /** Stops serving: open requests and streams are cut, and the socket file is removed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = once(this.http, 'close');
    this.http.close();
    this.http.closeAllConnections();
    for (const s of this.upgraded) s.destroy();
    await done;
    rmSync(this.socketPath, { force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort(); // the client went away before its answer
    });
    const url = new URL(req.url ?? '/', 'http://bulkhead');
    const ctx: Context = { req, res, url, signal: ac.signal };
    try {
      await this.route(ctx);
    } catch (err) {
      sendError(ctx, err);
    }
  }

  private route(ctx: Context): Promise<void> {
    const { req, url } = ctx;
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const allow = (methods: Record<string, Handler>): Promise<void> => {
      const h = methods[method];
      if (!h) throw new BadRequestError(405, `${method} ${url.pathname} is not allowed; use ${Object.keys(methods).join(' or ')}`);
      return h(ctx);
    };
    if (parts.length === 1 && parts[0] === 'health') return allow({ GET: () => this.health(ctx) });
    if (parts.length === 1 && parts[0] === 'metrics') return allow({ GET: () => this.prometheus(ctx) });
    if (parts[0] === 'zones') {
      if (parts.length === 1) return allow({ GET: () => this.listZones(ctx), POST: () => this.createZone(ctx) });
      const zone = this.manager.get(parts[1]!);
      const rest = parts.slice(2).join('/');
      switch (rest) {
        case '':
          return allow({ GET: async () => sendJson(ctx, 200, zone.info()), DELETE: () => this.destroyZone(ctx, zone) });
        case 'stop':
          return allow({ POST: () => this.stopZone(ctx, zone) });
        case 'abort':
          return allow({ POST: () => this.abortZone(ctx, zone) });
        case 'wait':
          return allow({ GET: async () => sendJson(ctx, 200, await zone.wait()) });
        case 'events':
          return allow({ GET: () => this.streamEvents(ctx, zone) });
        case 'logs':
          return allow({ GET: () => this.streamLogs(ctx, zone) });
        case 'metrics':
          return allow({ GET: async () => sendJson(ctx, 200, await zone.metrics()) });
        case 'exec':
          throw new BadRequestError(426, `exec needs an HTTP upgrade to ${EXEC_PROTOCOL}`);
        case 'files/content':
          return allow({ GET: () => this.readFile(ctx, zone), PUT: () => this.writeFile(ctx, zone) });
        case 'files/stat':
          return allow({ GET: async () => sendJson(ctx, 200, await zone.files.stat(pathParam(ctx))) });
        case 'files/exists':
          return allow({ GET: async () => sendJson(ctx, 200, { exists: await zone.files.exists(pathParam(ctx)) }) });
        case 'files/list':
          return allow({ GET: async () => sendJson(ctx, 200, await zone.files.list(pathParam(ctx))) });
        case 'files/mkdir':
          return allow({ POST: () => this.filesCall(ctx, (b) => zone.files.mkdir(str(b, 'path'), { recursive: bool(b, 'recursive'), mode: num(b, 'mode') })) });
        case 'files/remove':
          return allow({ POST: () => this.filesCall(ctx, (b) => zone.files.remove(str(b, 'path'), { recursive: bool(b, 'recursive') })) });
        case 'files/rename':
          return allow({ POST: () => this.filesCall(ctx, (b) => zone.files.rename(str(b, 'from'), str(b, 'to'))) });
      }
    }
    throw new BadRequestError(404, `no such endpoint: ${method} ${url.pathname} (see GET /health for the API version)`);
  }

  private async health(ctx: Context): Promise<void> {
    const zones = this.manager.list();
    sendJson(ctx, 200, { ok: true, api: API_VERSION, pid: process.pid, zones: zones.length, canCreate: this.manager.create !== undefined });
  }

  private async prometheus(ctx: Context): Promise<void> {
    const text = await prometheusText(this.manager.list());
    ctx.res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
    ctx.res.end(text);
  }

  private async listZones(ctx: Context): Promise<void> {
    sendJson(ctx, 200, this.manager.list().map((z) => z.info()));
  }

  private async createZone(ctx: Context): Promise<void> {
    if (!this.manager.create) throw new BadRequestError(405, 'this server serves one zone and cannot create zones (use bulkhead serve)');
    const body = await readJson(ctx, this.maxJsonBody);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidConfigError('spec', body, 'a JSON object { image, ... }');
    if ('signal' in body) throw new InvalidConfigError('signal', (body as { signal: unknown }).signal, 'absent: an AbortSignal cannot cross the wire (the client aborts by closing the request)');
    // The zone's spec.signal: a client that goes away while the zone boots aborts its creation, and
    // POST /zones/:ref/abort fires it later (the zone then ends as 'aborted' and is destroyed).
    const aborter = new AbortController();
    const onGone = () => aborter.abort();
    ctx.signal.addEventListener('abort', onGone, { once: true });
    let zone: Zone;
    try {
      zone = await this.manager.create({ ...(body as ZoneSpec), signal: aborter.signal });
    } finally {
      ctx.signal.removeEventListener('abort', onGone);
    }
    this.aborters.set(zone.id, aborter);
    zone.on('state', (s: string) => s === 'destroyed' && this.aborters.delete(zone.id));
    sendJson(ctx, 201, zone.info());
  }

  private async stopZone(ctx: Context, zone: Zone): Promise<void> {
    const body = await readJson(ctx, this.maxJsonBody);
    const graceMs = num(body, 'graceMs');
    sendJson(ctx, 200, await zone.stop(graceMs === undefined ? {} : { graceMs }));
  }

  private async abortZone(ctx: Context, zone: Zone): Promise<void> {
    const aborter = this.aborters.get(zone.id);
    if (!aborter) throw new BadRequestError(405, `zone ${zone.name} was not created through this server, so it has no AbortSignal here; stop or destroy it`);
    aborter.abort();
    ctx.res.writeHead(202).end();
  }

  private async destroyZone(ctx: Context, zone: Zone): Promise<void> {
    await zone.destroy();
    ctx.res.writeHead(204).end();
  }

  private async streamEvents(ctx: Context, zone: Zone): Promise<void> {
    startNdjson(ctx);
    for await (const event of zone.events({ signal: ctx.signal })) {
      const line = event.type === 'state' && (event.state === 'exited' || event.state === 'failed') ? { ...event, exit: zone.exit } : event;
      if (!(await writeLine(ctx, line))) return;
    }
    ctx.res.end();
  }

  private async streamLogs(ctx: Context, zone: Zone): Promise<void> {
    const follow = ['1', 'true', ''].includes(ctx.url.searchParams.get('follow') ?? 'no');
    const sinceText = ctx.url.searchParams.get('since');
    const since = sinceText === null ? undefined : Number(sinceText);
    if (since !== undefined && !Number.isFinite(since)) throw new InvalidConfigError('since', sinceText, 'milliseconds since the epoch');
    const entries = zone.logs({ follow, since, signal: ctx.signal });
    startNdjson(ctx);
    for await (const entry of entries) if (!(await writeLine(ctx, entry))) return;
    ctx.res.end();
  }

  private async readFile(ctx: Context, zone: Zone): Promise<void> {
    const stream = zone.files.readStream(pathParam(ctx));
    const { res } = ctx;
    res.once('close', () => stream.destroy());
    await new Promise<void>((resolve) => {
      let started = false;
      const begin = () => {
        if (started) return;
        started = true;
        res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'X-Bulkhead-Error' });
      };
      stream.on('data', (chunk: Buffer) => {
        begin();
        if (!res.write(chunk)) {
          stream.pause();
          res.once('drain', () => stream.resume());
        }
      });
      stream.once('end', () => {
        begin();
        res.end();
        resolve();
      });
      stream.once('error', (err) => {
        if (!started) sendError(ctx, err);
        else {
          // Mid-body: the error goes in a trailer, so the client fails with it rather than with a short file.
          res.addTrailers({ 'X-Bulkhead-Error': encodeURIComponent(JSON.stringify(errorToWire(err).error)) });
          res.end();
        }
        resolve();
      });
      stream.once('close', resolve);
    });
  }

  private async writeFile(ctx: Context, zone: Zone): Promise<void> {
    const modeText = ctx.url.searchParams.get('mode');
    const mode = modeText === null ? undefined : Number(modeText);
    if (mode !== undefined && !(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777)) throw new InvalidConfigError('mode', modeText, 'a file mode 0..4095 (decimal)');
    await zone.files.write(pathParam(ctx), ctx.req as Readable, mode === undefined ? {} : { mode });
    ctx.res.writeHead(204).end();
  }

  private async filesCall(ctx: Context, call: (body: unknown) => Promise<void>): Promise<void> {
    await call(await readJson(ctx, this.maxJsonBody));
    ctx.res.writeHead(204).end();
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const refuse = (err: unknown) => {
      const { status, error } = errorToWire(err);
      socket.end(jsonResponse(status, error));
    };
    try {
      const url = new URL(req.url ?? '/', 'http://bulkhead');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts.length !== 3 || parts[0] !== 'zones' || parts[2] !== 'exec') throw new BadRequestError(404, `no upgrade at ${url.pathname}; exec is /zones/:ref/exec`);
      if ((req.headers.upgrade ?? '').toLowerCase() !== EXEC_PROTOCOL) throw new BadRequestError(400, `upgrade to ${EXEC_PROTOCOL}, not ${JSON.stringify(req.headers.upgrade)}`);
      const zone = this.manager.get(parts[1]!);
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${EXEC_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
      serveExec(zone, socket, head);
    } catch (err) {
      refuse(err);
    }
  }
}

function sendJson(ctx: Context, status: number, value: unknown): void {
  const body = JSON.stringify(value ?? null);
  ctx.res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  ctx.res.end(body);
}

function sendError(ctx: Context, err: unknown): void {
  const { req, res } = ctx;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, error } = errorToWire(err);
  if (!req.complete) {
    // The body was refused part-way: answer, then drop what still comes for a while, then the connection.
    res.setHeader('connection', 'close');
    req.resume();
    const timer = setTimeout(() => req.socket.destroy(), DRAIN_MS);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
  }
  sendJson(ctx, status, { error });
}

function jsonResponse(status: number, error: unknown): string {
  const body = JSON.stringify({ error });
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

async function readJson(ctx: Context, cap: number): Promise<unknown> {
  const { req } = ctx;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > cap) throw new BadRequestError(413, `request body of ${declared} bytes; JSON bodies are at most ${cap} bytes`);
  // Read with listeners, not an async iterator: leaving an iterator early would destroy the
  // request, and with it the socket our 413 must go out on.
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= cap) {
        parts.push(chunk);
        return;
      }
      req.off('data', onData).off('end', onEnd);
      reject(new BadRequestError(413, `request body past ${cap} bytes; JSON bodies are at most ${cap} bytes`));
    };
    const onEnd = () => resolve(parts);
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BadRequestError(400, `malformed JSON body: ${(err as Error).message}`);
  }
}

function startNdjson(ctx: Context): void {
  ctx.res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  ctx.res.flushHeaders();
}

/** Writes one NDJSON line, waiting out backpressure; false once the client has gone. */
async function writeLine(ctx: Context, value: unknown): Promise<boolean> {
  const { res, signal } = ctx;
  if (signal.aborted || res.destroyed) return false;
  if (res.write(JSON.stringify(value) + '\n')) return true;
  const done = new AbortController();
  await Promise.race([once(res, 'drain', { signal: done.signal }), once(res, 'close', { signal: done.signal })]).catch(() => undefined);
  done.abort();
  return !signal.aborted && !res.destroyed;
}

function pathParam(ctx: Context): string {
  const p = ctx.url.searchParams.get('path');
  if (p === null || p === '') throw new InvalidConfigError('path', p, 'a path inside the zone, as ?path=');
  return p;
}

function str(body: unknown, key: string): string {
  const v = (body as Record<string, unknown> | null)?.[key];
  if (typeof v !== 'string' || v === '') throw new InvalidConfigError(key, v, 'a non-empty string');
  return v;
}

function bool(body: unknown, key: string): boolean | undefined {
  const v = (body as Record<string, unknown> | null)?.[key];
  if (v !== undefined && typeof v !== 'boolean') throw new InvalidConfigError(key, v, 'true or false');
  return v as boolean | undefined;
}

function num(body: unknown, key: string): number | undefined {
  const v = (body as Record<string, unknown> | null)?.[key];
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new InvalidConfigError(key, v, 'a non-negative number');
  return v as number | undefined;
}
