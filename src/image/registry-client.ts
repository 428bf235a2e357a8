/**
 * A client for one repository of a registry speaking the OCI distribution API (`/v2/`): manifests
 * by tag or digest with the Accept headers of OCI and Docker v2 manifests and indexes, and blobs
 * streamed to files. Every manifest and blob is checked against its sha256 as it arrives; the
 * Docker-Content-Digest header, when sent, must agree. Auth: anonymous, bearer tokens from the
 * challenge's realm (with basic credentials when given), or basic.
 *
 * Plain HTTP is used for loopback registries (localhost, 127.0.0.0/8, [::1]) and when `insecure`
 * is set; everything else is HTTPS.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { AbortedError } from '../errors';
import { DigestStream, sha256, verifyBytes } from './digest';
import { DigestMismatchError, ImageNotFoundError, RegistryError } from './errors';
import { type Descriptor } from './manifest';
import { MANIFEST_ACCEPT } from './media-types';
import { basicAuthorization, parseChallenge, type RegistryAuth } from './registry-auth';
import { canonicalName, isLoopbackRegistry, registryHost, type ImageReference } from './reference';

export interface RegistryClientOptions {
  readonly auth?: RegistryAuth;
  /** Plain HTTP even for a non-loopback registry. */
  readonly insecure?: boolean;
  readonly signal?: AbortSignal;
  /** How long to wait for a response's headers, and for the next chunk of a body (default 30 s). */
  readonly timeoutMs?: number;
}

export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string | undefined;
  readonly digest: string;
  readonly url: string;
}

const MAX_TOKEN_RESPONSE = 1024 * 1024;
const MAX_ERROR_BODY = 16 * 1024;
const USER_AGENT = 'bulkhead-image/1';

export class RegistryClient {
  readonly baseUrl: string;
  private token: string | undefined;
  private basic: string | undefined;

  constructor(
    readonly ref: ImageReference,
    private readonly opts: RegistryClientOptions = {},
  ) {
    const scheme = opts.insecure || isLoopbackRegistry(ref.domain) ? 'http' : 'https';
    this.baseUrl = `${scheme}://${registryHost(ref)}/v2/${ref.repository}`;
    if (opts.auth && 'token' in opts.auth) this.token = opts.auth.token;
  }

  /** A manifest or index by tag or digest; verified against the digest when asked by digest. */
  async manifest(tagOrDigest: string, maxBytes: number): Promise<FetchedManifest> {
    const url = `${this.baseUrl}/manifests/${tagOrDigest}`;
    const res = await this.request(url, { Accept: MANIFEST_ACCEPT });
    if (res.status === 404) {
      await discard(res);
      throw new ImageNotFoundError(canonicalName(this.ref), [url], { detail: 'the registry has no such manifest' });
    }
    if (!res.ok) throw await this.failure(url, res, 'cannot get the manifest');
    const bytes = await readBounded(res, maxBytes, url, this.timeoutMs, this.opts.signal);
    const digest = sha256(bytes);
    if (tagOrDigest.startsWith('sha256:') && digest !== tagOrDigest) throw new DigestMismatchError(`manifest ${url}`, tagOrDigest, digest);
    const header = res.headers.get('docker-content-digest');
    if (header && header.startsWith('sha256:') && header !== digest) throw new DigestMismatchError(`manifest ${url} (Docker-Content-Digest)`, header, digest);
    const mediaType = res.headers.get('content-type')?.split(';')[0]?.trim() || undefined;
    return { bytes, mediaType, digest, url };
  }

  /** A small blob (the image config) into memory, verified. */
  async blobBytes(desc: Descriptor, maxBytes: number, what: string): Promise<Buffer> {
    const url = `${this.baseUrl}/blobs/${desc.digest}`;
    if (desc.size > maxBytes) throw new RegistryError(url, undefined, `${what} is ${desc.size} bytes, more than the ${maxBytes} allowed`);
    const res = await this.request(url, {});
    if (!res.ok) throw await this.failure(url, res, `cannot get ${what}`);
    const bytes = await readBounded(res, desc.size + 1, url, this.timeoutMs, this.opts.signal);
    verifyBytes(bytes, `${what} ${url}`, desc);
    return bytes;
  }

  /** Streams a blob into `file`, hashing as it goes; rejects (leaving `file` to the caller) on any mismatch. */
  async downloadBlob(desc: Descriptor, file: string, what: string, onBytes: (n: number) => void): Promise<void> {
    const url = `${this.baseUrl}/blobs/${desc.digest}`;
    const res = await this.request(url, {});
    if (!res.ok) throw await this.failure(url, res, `cannot get ${what}`);
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(length) && length !== desc.size) {
      await discard(res);
      throw new DigestMismatchError(`${what} ${url} size (Content-Length)`, `${desc.size} bytes`, `${length} bytes`);
    }
    const hasher = new DigestStream();
    const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    try {
      for await (const chunk of bodyChunks(res, url, this.timeoutMs, this.opts.signal)) {
        if (hasher.bytes + chunk.length > desc.size) throw new DigestMismatchError(`${what} ${url} size`, `${desc.size} bytes`, `more than ${desc.size} bytes`);
        hasher.write(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
        onBytes(hasher.bytes);
      }
      out.end();
      await once(out, 'close');
    } finally {
      if (!out.closed) {
        out.destroy();
        await once(out, 'close').catch(() => undefined);
      }
    }
    hasher.end();
    if (hasher.bytes !== desc.size) throw new DigestMismatchError(`${what} ${url} size`, `${desc.size} bytes`, `${hasher.bytes} bytes`);
    const actual = hasher.digest();
    if (actual !== desc.digest) throw new DigestMismatchError(`${what} ${url}`, desc.digest, actual);
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? 30_000;
  }

  /** GET with the auth dance: on a 401, answer the challenge once and retry. */
  private async request(url: string, headers: Record<string, string>): Promise<Response> {
    let res = await this.fetch(url, { ...headers, ...this.authorization() });
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    await discard(res);
    if (!challenge) throw new RegistryError(url, 401, 'the registry wants authentication but sent no challenge we understand');
    if (challenge.scheme === 'basic') {
      const auth = this.opts.auth;
      if (!auth || !('username' in auth)) throw new RegistryError(url, 401, 'the registry wants basic authentication: give a username and password');
      this.basic = basicAuthorization(auth);
      this.token = undefined;
    } else {
      this.token = await this.fetchToken(challenge.params, url);
      this.basic = undefined;
    }
    res = await this.fetch(url, { ...headers, ...this.authorization() });
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw new RegistryError(url, res.status, this.opts.auth ? 'the registry refused these credentials' : 'the registry refused anonymous access: give credentials');
    }
    return res;
  }

  private authorization(): Record<string, string> {
    if (this.token) return { Authorization: `Bearer ${this.token}` };
    if (this.basic) return { Authorization: this.basic };
    return {};
  }

  private async fetchToken(params: Readonly<Record<string, string>>, forUrl: string): Promise<string> {
    const realm = params.realm;
    if (!realm) throw new RegistryError(forUrl, 401, 'the bearer challenge has no realm');
    let tokenUrl: URL;
    try {
      tokenUrl = new URL(realm);
    } catch {
      throw new RegistryError(forUrl, 401, `the bearer challenge's realm ${JSON.stringify(realm)} is not a URL`);
    }
    if (tokenUrl.protocol !== 'https:' && tokenUrl.protocol !== 'http:') throw new RegistryError(forUrl, 401, `the token realm ${realm} is not http(s)`);
    if (tokenUrl.protocol === 'http:' && !this.opts.insecure && !isLoopbackRegistry(tokenUrl.host)) {
      throw new RegistryError(forUrl, 401, `the token realm ${realm} is plain HTTP; allowed only for loopback or with insecure`);
    }
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', params.scope ?? `repository:${this.ref.repository}:pull`);
    const headers: Record<string, string> = {};
    const auth = this.opts.auth;
    if (auth && 'username' in auth) headers.Authorization = basicAuthorization(auth);
    const url = tokenUrl.toString();
    const res = await this.fetch(url, headers);
    if (!res.ok) throw await this.failure(url, res, 'the token server refused');
    const body = await readBounded(res, MAX_TOKEN_RESPONSE, url, this.timeoutMs, this.opts.signal);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError(url, res.status, 'the token server answered something that is not JSON');
    }
    const p = parsed as { token?: unknown; access_token?: unknown };
    const token = typeof p.token === 'string' && p.token ? p.token : typeof p.access_token === 'string' ? p.access_token : undefined;
    if (!token || token.length > 64 * 1024 || /[\r\n]/.test(token)) throw new RegistryError(url, res.status, 'the token server sent no usable token');
    return token;
  }

  /** fetch with a deadline on the response headers and the caller's signal. */
  private async fetch(url: string, headers: Record<string, string>): Promise<Response> {
    const signal = this.opts.signal;
    if (signal?.aborted) throw new AbortedError(`fetching ${url}`, { cause: signal.reason });
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new Error('timeout')), this.timeoutMs);
    try {
      return await fetch(url, { headers: { 'User-Agent': USER_AGENT, ...headers }, signal: controller.signal, redirect: 'follow' });
    } catch (err) {
      if (signal?.aborted) throw new AbortedError(`fetching ${url}`, { cause: err });
      if (controller.signal.aborted) throw new RegistryError(url, undefined, `no response within ${this.timeoutMs} ms`);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new RegistryError(url, undefined, `cannot reach the registry: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private async failure(url: string, res: Response, what: string): Promise<RegistryError> {
    let detail = '';
    try {
      const body = await readBounded(res, MAX_ERROR_BODY, url, this.timeoutMs, this.opts.signal, true);
      const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
      const first = parsed.errors?.[0];
      if (first) detail = `: ${[first.code, first.message].filter(Boolean).join(' ')}`;
    } catch {
      // no readable error body: the status says enough
    }
    return new RegistryError(url, res.status, `${what}${detail}`);
  }
}

/** The body's chunks, with an idle deadline between chunks and the caller's signal. */
async function* bodyChunks(res: Response, url: string, idleMs: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  if (!res.body) return;
  const reader = res.body.getReader();
  try {
    for (;;) {
      if (signal?.aborted) throw new AbortedError(`reading ${url}`, { cause: signal.reason });
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      const stop = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RegistryError(url, res.status, `no data for ${idleMs} ms`)), idleMs);
        onAbort = () => reject(new AbortedError(`reading ${url}`, { cause: signal?.reason }));
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      let result: Awaited<ReturnType<typeof reader.read>>;
      try {
        result = await Promise.race([reader.read(), stop]);
      } finally {
        clearTimeout(timer);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
      }
      if (result.done) return;
      yield Buffer.from(result.value.buffer, result.value.byteOffset, result.value.byteLength);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** Reads a whole body of at most `max` bytes; `truncate` keeps the first `max` instead of failing. */
async function readBounded(res: Response, max: number, url: string, idleMs: number, signal?: AbortSignal, truncate = false): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of bodyChunks(res, url, idleMs, signal)) {
    total += chunk.length;
    if (total > max) {
      if (truncate) {
        chunks.push(chunk.subarray(0, chunk.length - (total - max)));
        break;
      }
      throw new RegistryError(url, res.status, `the response is larger than the ${max} bytes allowed`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}
