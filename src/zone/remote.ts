/**
 * RemoteZone: a zone served over HTTP by another process — `bulkhead serve` (here, or inside the
 * emulated host through its connect()), or the api.sock of a zone another process owns. It keeps
 * one events stream open and mirrors the served zone's state machine from it, so `state`, `wait()`
 * and events() behave as for a local zone.
 *
 * No call hangs on a server that has gone: when the events stream or any call's connection is
 * cut, the zone becomes `failed` ("its server went away") and every pending call, stream and exec
 * rejects at once with ZoneClosedError. Streams (exec, logs, file bodies) have no deadline.
 *
 * A zone this client created is destroyed by `await using`; one it only attached to (get(),
 * Zone.attach) is detached instead, and stays up.
 */
import { PassThrough, type Readable } from 'node:stream';
import { BulkheadError } from '../errors';
import { RemoteProcess } from '../server/exec-client';
import { ServerUnavailableError } from '../server/errors';
import { ndjson, readAll, request, requestJson, transportError, type Endpoint, type RequestOptions } from '../server/http-client';
import { errorFromWire } from '../server/wire';
import { ZoneClosedError } from './errors';
import { Zone } from './zone';
import type {
  DirEntry,
  FileStat,
  ImageRunConfig,
  LogEntry,
  LogOptions,
  SpawnOptions,
  ZoneBackendKind,
  ZoneEvent,
  ZoneExit,
  ZoneFiles,
  ZoneInfo,
  ZoneMetrics,
  ZoneProcess,
  ZoneState,
} from './types';

export interface RemoteZoneOptions {
  /** What `backend` reports (default 'remote'; 'emulated-host' for zones run there; an attached zone: its owner's). */
  backend?: ZoneBackendKind;
  /** True when this client created the zone: `await using` then destroys it; otherwise it detaches. */
  owned?: boolean;
}

/** How long a server may take to answer /health before it is taken as gone. */
const PROBE_MS = 2_000;
/** How long a call the server failed with ZoneClosedError waits for the events stream to bring the end. */
const CATCH_UP_MS = 5_000;

type Pending = { fail(err: Error): void; survivesEnd: boolean };

export class RemoteZone extends Zone {
  readonly id: string;
  readonly name: string;
  readonly backend: ZoneBackendKind;
  readonly image: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly createdAt: string;
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly files: ZoneFiles;

  private readonly endpoint: Endpoint;
  private readonly owned: boolean;
  private readonly runConfig: ImageRunConfig | undefined;
  private readonly pending = new Set<Pending>();
  private readonly eventsAbort = new AbortController();
  private lostReason: string | undefined;
  private detached = false;
  private readonly synced: Promise<void>;

  /**
   * Use RemoteZone.open() (which waits until the mirrored state has caught up), or the client's
   * create/get. `connect` opens a new connection to the server for each request.
   */
  constructor(endpoint: Endpoint, info: ZoneInfo, opts: RemoteZoneOptions = {}) {
    super();
    this.endpoint = endpoint;
    this.id = info.id;
    this.name = info.name;
    this.backend = opts.backend ?? 'remote';
    this.image = info.image;
    this.labels = Object.freeze({ ...info.labels });
    this.createdAt = info.createdAt;
    this.memoryMiB = info.memoryMiB;
    this.vcpus = info.vcpus;
    this.owned = opts.owned ?? false;
    this.runConfig = info.imageConfig;
    this.files = new RemoteFiles(this);
    this.synced = this.follow(info.state);
  }

  override get imageConfig(): ImageRunConfig | undefined {
    return this.runConfig;
  }

  /** The zone `ref` (id, name or id prefix) on the server at `endpoint`, its state caught up. */
  static async open(endpoint: Endpoint, ref: string, opts: RemoteZoneOptions = {}): Promise<RemoteZone> {
    const info = await requestJson<ZoneInfo>(endpoint, { method: 'GET', path: `/zones/${encodeURIComponent(ref)}`, what: `find zone ${ref}` });
    return RemoteZone.fromInfo(endpoint, info, opts);
  }

  static async fromInfo(endpoint: Endpoint, info: ZoneInfo, opts: RemoteZoneOptions = {}): Promise<RemoteZone> {
    const zone = new RemoteZone(endpoint, info, opts);
    await zone.synced;
    return zone;
  }

  spawn(argv: readonly string[], opts: SpawnOptions = {}): ZoneProcess {
    this.assertReachable('start a process');
    if (this.exit) throw this.closedError('start a process');
    let entry: Pending;
    const proc = new RemoteProcess(this.endpoint, this.id, argv, opts, {
      lost: (cause) => this.checkServer(cause, `run ${argv[0]}`),
      failed: (err) => this.afterClosed(err) as Promise<Error>,
    });
    entry = { fail: (err) => proc.abort(err), survivesEnd: false };
    this.pending.add(entry);
    proc.wait().then(
      () => this.pending.delete(entry),
      () => this.pending.delete(entry),
    );
    return proc;
  }

  async *logs(opts: LogOptions = {}): AsyncGenerator<LogEntry> {
    const params = new URLSearchParams();
    if (opts.follow) params.set('follow', '1');
    if (opts.since !== undefined) params.set('since', String(opts.since));
    if (opts.signal?.aborted) return;
    const ac = new AbortController();
    let res: import('node:http').IncomingMessage | undefined;
    const onAbort = () => {
      ac.abort();
      res?.destroy();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const entry: Pending = { fail: (err) => res?.destroy(err), survivesEnd: true };
    try {
      res = await this.track(
        (signal) => request(this.endpoint, { method: 'GET', path: `${this.path('logs')}?${params}`, signal, what: 'read the logs' }),
        { survivesEnd: true, signal: ac.signal },
      );
      this.pending.add(entry);
      for await (const e of ndjson<LogEntry>(res, (err) => err)) yield e;
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw err instanceof BulkheadError ? err : await this.checkServer(err as Error, 'read the logs');
    } finally {
      this.pending.delete(entry);
      res?.destroy();
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  metrics(): Promise<ZoneMetrics> {
    return this.json<ZoneMetrics>({ method: 'GET', path: this.path('metrics'), what: 'read metrics' });
  }

  async stop(opts: { graceMs?: number } = {}): Promise<ZoneExit> {
    if (this.exit) return this.exit;
    const exit = await this.json<ZoneExit>({ method: 'POST', path: this.path('stop'), json: opts, what: 'stop the zone' }, true);
    await this.wait();
    return exit;
  }

  async destroy(): Promise<void> {
    if (this.state === 'destroyed') return;
    if (!this.lostReason && !this.detached) {
      try {
        await this.json<void>({ method: 'DELETE', path: this.path(''), what: 'destroy the zone' }, true);
      } catch (err) {
        if (!(err instanceof BulkheadError && err.code === 'ZONE_NOT_FOUND') && !this.lostReason) throw err;
      }
      // The events stream brings the end; a server that goes meanwhile ends it too.
      await new Promise<void>((resolve) => {
        if (this.state === 'destroyed' || this.lostReason) return resolve();
        const onState = (s: ZoneState) => {
          if (s !== 'destroyed' && !this.lostReason) return;
          this.off('state', onState);
          resolve();
        };
        this.on('state', onState);
      });
    }
    this.eventsAbort.abort();
    this.finishLocally();
  }

  /** Fires, on the server, the AbortSignal the zone was created with (for client.create's spec.signal). */
  async abort(): Promise<void> {
    await this.json<void>({ method: 'POST', path: this.path('abort'), what: 'abort the zone' }, true);
  }

  /** Stops following the zone and fails calls still pending; the zone itself keeps running. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.eventsAbort.abort();
    this.failPending(this.closedError('finish a call (detached)'), true);
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    if (this.owned) await this.destroy();
    else this.detach();
  }

  // ---- internals shared with RemoteFiles ----

  /** `/zones/<id>/<rest>` */
  path(rest: string): string {
    return `/zones/${encodeURIComponent(this.id)}${rest ? `/${rest}` : ''}`;
  }

  async json<T>(opts: Omit<RequestOptions, 'signal'>, survivesEnd = false): Promise<T> {
    return this.track((signal) => requestJson<T>(this.endpoint, { ...opts, signal }), { survivesEnd });
  }

  /**
   * Runs a request that fails at once, with ZoneClosedError, when the zone fails or its server goes
   * away meanwhile; a cut connection is taken as the server having gone.
   */
  async track<T>(call: (signal: AbortSignal) => Promise<T>, opts: { survivesEnd: boolean; signal?: AbortSignal }): Promise<T> {
    this.assertReachable(`call the zone`);
    const ac = new AbortController();
    const onOuter = () => ac.abort();
    opts.signal?.addEventListener('abort', onOuter, { once: true });
    let failWith: ((err: Error) => void) | undefined;
    const failed = new Promise<never>((_, reject) => (failWith = reject));
    const entry: Pending = {
      fail: (err) => {
        ac.abort();
        failWith!(err);
      },
      survivesEnd: opts.survivesEnd,
    };
    this.pending.add(entry);
    try {
      return await Promise.race([
        call(ac.signal).catch(async (err: unknown) => {
          if (err instanceof ServerUnavailableError && err.reason !== 'protocol') throw await this.checkServer(err, 'call the zone');
          throw await this.afterClosed(err);
        }),
        failed,
      ]);
    } finally {
      this.pending.delete(entry);
      opts.signal?.removeEventListener('abort', onOuter);
      failed.catch(() => undefined);
    }
  }

  endpointFor(): Endpoint {
    return this.endpoint;
  }

  /**
   * A connection of ours was cut. If the server no longer answers, it has gone: the zone fails and
   * so does every pending call (ZoneClosedError). If it answers, only this call failed.
   */
  async checkServer(cause: Error, operation: string): Promise<BulkheadError> {
    if (!this.lostReason && !this.detached) {
      const alive = await requestJson(this.endpoint, { method: 'GET', path: '/health', what: 'check the server', signal: AbortSignal.timeout(PROBE_MS) }).then(
        () => true,
        () => false,
      );
      if (alive) {
        return new ServerUnavailableError(this.endpoint.describe, 'lost', `cannot ${operation}: its connection was cut (${cause.message}); the server still answers`, { cause });
      }
      this.lose(`its server went away (${cause.message})`);
    }
    return this.closedError(operation);
  }

  /**
   * The server answered a call with ZoneClosedError: the zone has ended there, and its events stream
   * brings the end a moment later on another connection. Waits (briefly) for the mirror to get there,
   * so that a caller who sees the error also sees `state` and `exit` say why.
   */
  async afterClosed(err: unknown): Promise<unknown> {
    if (!(err instanceof ZoneClosedError) || this.exit || this.lostReason || this.detached) return err;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, CATCH_UP_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      const onState = (s: ZoneState) => (s === 'exited' || s === 'failed' || s === 'destroyed') && (this.off('state', onState), done());
      this.on('state', onState);
      timer.unref();
    });
    return err;
  }

  assertReachable(operation: string): void {
    if (this.lostReason || this.detached || this.state === 'destroyed') throw this.closedError(operation);
  }

  // ---- the mirrored state machine ----

  /** Follows the served zone's events; resolves once the mirror has reached `initial` (or the stream ended). */
  private follow(initial: ZoneState): Promise<void> {
    let caughtUp!: () => void;
    const synced = new Promise<void>((resolve) => (caughtUp = resolve));
    const rank = (s: ZoneState) => ['creating', 'booting', 'running', 'stopping', 'exited', 'failed', 'destroyed'].indexOf(s);
    const check = () => {
      if (rank(this.state) >= rank(initial) || this.state === 'failed' || this.lostReason) caughtUp();
    };
    check();
    void (async () => {
      try {
        const res = await request(this.endpoint, { method: 'GET', path: this.path('events'), signal: this.eventsAbort.signal, what: 'follow the zone' });
        const events = ndjson<ZoneEvent & { exit?: ZoneExit }>(res, (err) => err);
        for await (const event of events) {
          this.apply(event);
          check();
          if (this.state === 'destroyed') break;
        }
        res.destroy();
        if (this.state !== 'destroyed' && !this.eventsAbort.signal.aborted) this.lose('its server ended the events stream');
      } catch (err) {
        if (this.eventsAbort.signal.aborted) return;
        const why = err instanceof BulkheadError ? err : transportError(this.endpoint, { what: 'follow the zone' }, err as Error);
        this.lose(why instanceof ServerUnavailableError ? `its server went away (${why.message})` : `it is no longer served (${why.message})`);
      } finally {
        caughtUp();
      }
    })();
    return synced;
  }

  private apply(event: ZoneEvent & { exit?: ZoneExit }): void {
    if (event.type !== 'state') {
      this.record(event);
      return;
    }
    if (event.state === this.state) return;
    const { exit } = event;
    try {
      this.transition(event.state, event.reason, exit);
    } catch {
      // Our mirror moved on its own (the connection was taken as lost): the server's word is late.
      return;
    }
    if (event.state === 'failed') this.failPending(this.closedError('finish a call'), false);
  }

  private lose(why: string): void {
    if (this.lostReason || this.detached) return;
    const lastWords = this.endpoint.lastWords?.();
    const reason = lastWords ? `${why}; ${lastWords}` : why;
    this.lostReason = reason;
    if (this.state !== 'exited' && this.state !== 'failed' && this.state !== 'destroyed') {
      this.transition('failed', reason, { reason: 'failed', failure: reason });
    }
    this.eventsAbort.abort();
    this.failPending(this.closedError('finish a call'), true);
  }

  private failPending(err: Error, all: boolean): void {
    for (const p of [...this.pending]) {
      if (!all && p.survivesEnd) continue;
      this.pending.delete(p);
      p.fail(err);
    }
  }

  private finishLocally(): void {
    if (this.state === 'destroyed') return;
    if (this.state !== 'exited' && this.state !== 'failed') {
      const reason = this.lostReason ?? 'destroyed';
      this.transition('failed', reason, { reason: 'failed', failure: reason });
    }
    this.transition('destroyed');
  }
}

class RemoteFiles implements ZoneFiles {
  constructor(private readonly zone: RemoteZone) {}

  async read(path: string): Promise<Buffer> {
    const res = await this.open(path);
    const body = await this.zone.track(() => readAll(res), { survivesEnd: false }).catch(async (err: Error) => {
      throw err instanceof BulkheadError ? err : await this.zone.checkServer(err, `read ${path}`);
    });
    throwTrailer(res);
    return body;
  }

  readStream(path: string): Readable {
    const out = new PassThrough();
    this.open(path).then(
      (res) => {
        res.on('data', (c: Buffer) => {
          if (!out.write(c)) res.pause();
        });
        out.on('drain', () => res.resume());
        const cut = () => void this.zone.checkServer(new Error('the file was cut before its end'), `read ${path}`).then((err) => out.destroy(err));
        res.once('end', () => {
          if (!res.complete) return cut();
          try {
            throwTrailer(res);
            out.end();
          } catch (err) {
            out.destroy(err as Error);
          }
        });
        res.once('close', () => {
          if (!res.readableEnded) cut();
        });
        out.once('close', () => res.destroy());
      },
      (err: Error) => out.destroy(err),
    );
    return out;
  }

  async write(path: string, data: string | Buffer | Readable, opts: { mode?: number } = {}): Promise<void> {
    const params = new URLSearchParams({ path });
    if (opts.mode !== undefined) params.set('mode', String(opts.mode));
    await this.zone.json<void>({ method: 'PUT', path: `${this.zone.path('files/content')}?${params}`, body: data, what: `write ${path}` });
  }

  stat(path: string): Promise<FileStat> {
    return this.zone.json<FileStat>({ method: 'GET', path: this.query('stat', path), what: `stat ${path}` });
  }

  async exists(path: string): Promise<boolean> {
    return (await this.zone.json<{ exists: boolean }>({ method: 'GET', path: this.query('exists', path), what: `check ${path}` })).exists;
  }

  list(path: string): Promise<DirEntry[]> {
    return this.zone.json<DirEntry[]>({ method: 'GET', path: this.query('list', path), what: `list ${path}` });
  }

  mkdir(path: string, opts: { recursive?: boolean; mode?: number } = {}): Promise<void> {
    return this.zone.json<void>({ method: 'POST', path: this.zone.path('files/mkdir'), json: { path, ...opts }, what: `make ${path}` });
  }

  remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    return this.zone.json<void>({ method: 'POST', path: this.zone.path('files/remove'), json: { path, ...opts }, what: `remove ${path}` });
  }

  rename(from: string, to: string): Promise<void> {
    return this.zone.json<void>({ method: 'POST', path: this.zone.path('files/rename'), json: { from, to }, what: `rename ${from}` });
  }

  private query(op: string, path: string): string {
    return `${this.zone.path(`files/${op}`)}?${new URLSearchParams({ path })}`;
  }

  private open(path: string) {
    return this.zone.track(
      (signal) => request(this.zone.endpointFor(), { method: 'GET', path: this.query('content', path), signal, what: `read ${path}` }),
      { survivesEnd: false },
    );
  }
}

/** A file body that failed part-way carries the error in a trailer. */
function throwTrailer(res: { trailers: Record<string, string | undefined> }): void {
  const t = res.trailers['x-bulkhead-error'];
  if (t) throw errorFromWire(JSON.parse(decodeURIComponent(t)));
}
