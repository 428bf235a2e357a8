/**
 * Image references in Docker's grammar: `[HOST[:PORT]/]NAME[:TAG][@sha256:HEX]`. A first component
 * with a "." or ":" (or `localhost`) is a registry host; otherwise the image lives on Docker Hub,
 * where one-component names are under `library/`. With neither tag nor digest the tag is `latest`.
 */
import { InvalidReferenceError } from './errors';
import { isDigest } from './digest';

export interface ImageReference {
  /** Registry host as written, with its port: `localhost:5000`, `docker.io`. */
  readonly domain: string;
  /** Repository path inside the registry: `library/busybox`, `team/app`. */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const MAX_NAME_LENGTH = 255;
const MAX_REFERENCE_LENGTH = 512;

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_PART = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;

export function parseReference(text: string): ImageReference {
  if (typeof text !== 'string' || text.length === 0) throw new InvalidReferenceError(String(text), 'it is empty');
  if (text.length > MAX_REFERENCE_LENGTH) throw new InvalidReferenceError(text.slice(0, 64) + '…', `longer than ${MAX_REFERENCE_LENGTH} characters`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new InvalidReferenceError(text, `the digest ${JSON.stringify(digest)} is not sha256: followed by 64 lower-case hex digits`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new InvalidReferenceError(text, `the tag ${JSON.stringify(tag)} is not 1-128 of [A-Za-z0-9_.-] starting with a word character`);
  }
  if (rest.length === 0) throw new InvalidReferenceError(text, 'the name is empty');
  const parts = rest.split('/');
  let domain = DEFAULT_DOMAIN;
  if (parts.length > 1 && looksLikeDomain(parts[0]!)) {
    domain = parts.shift()!;
    validateDomain(text, domain);
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  for (const part of parts) {
    if (!COMPONENT.test(part)) {
      const why = part !== part.toLowerCase() ? 'has upper-case letters' : part === '' ? 'is empty' : 'has characters outside a-z, 0-9 and the separators';
      throw new InvalidReferenceError(text, `the name component ${JSON.stringify(part)} ${why}`);
    }
  }
  if (domain === DEFAULT_DOMAIN && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (domain.length + 1 + repository.length > MAX_NAME_LENGTH) throw new InvalidReferenceError(text, `the name is longer than ${MAX_NAME_LENGTH} characters`);
  return { domain, repository, tag: tag ?? (digest ? undefined : DEFAULT_TAG), digest };
}

function looksLikeDomain(part: string): boolean {
  return part.includes('.') || part.includes(':') || part === 'localhost' || part !== part.toLowerCase();
}

function validateDomain(text: string, domain: string): void {
  let host = domain;
  let port: string | undefined;
  const m = /^(.*):(\d+)$/.exec(domain);
  if (m) {
    host = m[1]!;
    port = m[2]!;
  }
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw new InvalidReferenceError(text, `the port ${port} is not 1-65535`);
  if (!DOMAIN_PART.test(host) && !IPV6.test(host)) throw new InvalidReferenceError(text, `the registry host ${JSON.stringify(host)} is not a host name or address`);
}

/** `docker.io/library/busybox:latest`: the one spelling the store keys names by. */
export function canonicalName(ref: ImageReference): string {
  return `${ref.domain}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The repository without tag or digest: `docker.io/library/busybox`. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.repository}`;
}

/** The short form people type: `busybox:latest`, `team/app:1`, `localhost:5000/x:y`. */
export function familiarName(canonical: string): string {
  if (canonical.startsWith(`${DEFAULT_DOMAIN}/library/`)) return canonical.slice(`${DEFAULT_DOMAIN}/library/`.length);
  if (canonical.startsWith(`${DEFAULT_DOMAIN}/`)) return canonical.slice(`${DEFAULT_DOMAIN}/`.length);
  return canonical;
}

/** A reference that names a tag (not only a digest): what the store can record as a name. */
export function taggedName(ref: ImageReference): string | undefined {
  return ref.tag === undefined ? undefined : `${repositoryName(ref)}:${ref.tag}`;
}

/** The registry's API host: Docker Hub's API is not at docker.io itself. */
export function registryHost(ref: ImageReference): string {
  return ref.domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : ref.domain;
}

/** Plain HTTP is the default only for the loopback: everything else needs `insecure`. */
export function isLoopbackRegistry(domain: string): boolean {
  const host = domain.replace(/:\d+$/, '');
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
