/**
 * connect(): a client of a zone server (`bulkhead serve`, or a zone's api.sock) with the Zone
 * API's shape. Zones come back as RemoteZone, a Zone like any other.
 *
 *   await using server = await connect('/run/bulkhead/serve.sock');
 *   await using zone = await server.create({ image: 'busybox' });
 *   const { stdout } = await zone.exec(['echo', 'hello']);
 *
 * The address is a socket path, or a connection factory (for instance the emulated host's
 * `host.connect(path)` to a server inside it).
 */
import { AbortedError, InvalidConfigError } from '../errors';
import { RemoteZone, type RemoteZoneOptions } from '../zone/remote';
import type { ZoneSpec } from '../zone/spec';
import type { ZoneBackendKind, ZoneInfo } from '../zone/types';
import { endpointOf, request, requestJson, type Connector, type Endpoint, type ServerAddress } from './http-client';

export interface ServerHealth {
  ok: boolean;
  api: number;
  pid: number;
  zones: number;
  canCreate: boolean;
}

export interface ConnectOptions {
  /** What zones from this server report as `backend` (default 'remote'). */
  backend?: ZoneBackendKind;
}

export class ZoneClient implements AsyncDisposable {
  private readonly zones = new Set<RemoteZone>();

  constructor(
    private readonly endpoint: Endpoint,
    private readonly opts: ConnectOptions = {},
  ) {}

  get address(): string {
    return this.endpoint.describe;
  }

  health(): Promise<ServerHealth> {
    return requestJson<ServerHealth>(this.endpoint, { method: 'GET', path: '/health', what: 'check the server' });
  }

  /**
   * Creates a zone on the server and resolves once it runs. `spec.signal` works as for a local
   * zone: aborting during creation cancels it, aborting later destroys the zone.
   */
  async create(spec: ZoneSpec): Promise<RemoteZone> {
    const { signal, ...data } = spec;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidConfigError('signal', signal, 'an AbortSignal');
    if (signal?.aborted) throw new AbortedError('creating a zone');
    const info = await requestJson<ZoneInfo>(this.endpoint, { method: 'POST', path: '/zones', json: data, signal, what: 'create a zone' });
    const zone = await this.track(info, { owned: true });
    if (signal) {
      // The server fires the zone's own signal (it ends as 'aborted', then is destroyed there).
      const onAbort = () => void zone.abort().catch(() => zone.destroy()).catch(() => undefined);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        zone.on('state', (s: string) => s === 'destroyed' && signal.removeEventListener('abort', onAbort));
      }
    }
    return zone;
  }

  /** The server's zones, as data. */
  list(): Promise<ZoneInfo[]> {
    return requestJson<ZoneInfo[]>(this.endpoint, { method: 'GET', path: '/zones', what: 'list zones' });
  }

  /** A served zone by id, name or id prefix; disposing it detaches (it keeps running). */
  async get(ref: string): Promise<RemoteZone> {
    const info = await requestJson<ZoneInfo>(this.endpoint, { method: 'GET', path: `/zones/${encodeURIComponent(ref)}`, what: `find zone ${ref}` });
    return this.track(info, { owned: false });
  }

  /** The Prometheus text of GET /metrics. */
  async prometheus(): Promise<string> {
    const res = await request(this.endpoint, { method: 'GET', path: '/metrics', what: 'read metrics' });
    res.setEncoding('utf8');
    let text = '';
    for await (const chunk of res as AsyncIterable<string>) text += chunk;
    return text;
  }

  /** Detaches every zone this client handed out (zones keep running on the server). */
  close(): void {
    for (const z of this.zones) z.detach();
    this.zones.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  private async track(info: ZoneInfo, opts: RemoteZoneOptions): Promise<RemoteZone> {
    const zone = await RemoteZone.fromInfo(this.endpoint, info, { backend: this.opts.backend, ...opts });
    this.zones.add(zone);
    zone.on('state', (s: string) => s === 'destroyed' && this.zones.delete(zone));
    return zone;
  }
}

/**
 * A client of the zone server at `address` (a Unix socket path, a connection factory, or both with
 * a name). Checks that a zone server answers there: a ServerUnavailableError says why not.
 */
export async function connect(address: ServerAddress | Connector, opts: ConnectOptions = {}): Promise<ZoneClient> {
  const client = new ZoneClient(endpointOf(address), opts);
  await client.health();
  return client;
}
