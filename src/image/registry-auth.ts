/**
 * The registry auth handshake (the Docker registry token spec): a 401 carries a WWW-Authenticate
 * challenge. `Bearer realm=…,service=…,scope=…` means: get a token from the realm (with basic
 * credentials if we have them, anonymously otherwise) and send it as `Authorization: Bearer`.
 * `Basic realm=…` means: send the credentials themselves.
 */
export interface AuthChallenge {
  readonly scheme: 'bearer' | 'basic';
  readonly params: Readonly<Record<string, string>>;
}

/** Credentials for a registry: a user name and password (or identity token as password), or a ready bearer token. */
export type RegistryAuth = { readonly username: string; readonly password: string } | { readonly token: string };

/**
 * Parses the challenges of a WWW-Authenticate header (RFC 7235: `scheme k=v, k="v"` and several
 * challenges separated by commas). Returns the Bearer one if offered, else Basic, else undefined.
 */
export function parseChallenge(header: string | null): AuthChallenge | undefined {
  if (!header) return undefined;
  const challenges: { scheme: string; params: Record<string, string> }[] = [];
  const isTokenChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9!#$%&'*+.^_`|~-]/.test(c);
  let i = 0;
  const skip = (chars: string): void => {
    while (i < header.length && chars.includes(header[i]!)) i++;
  };
  while (i < header.length) {
    skip(' \t,');
    const start = i;
    while (isTokenChar(header[i])) i++;
    if (i === start) break; // not a token: stop at what we cannot read
    const name = header.slice(start, i);
    skip(' \t');
    if (header[i] === '=' && challenges.length > 0) {
      i++;
      skip(' \t');
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < header.length && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < header.length) i++;
          value += header[i++];
        }
        i++;
      } else {
        const v = i;
        while (i < header.length && header[i] !== ',' && header[i] !== ' ') i++;
        value = header.slice(v, i);
      }
      challenges[challenges.length - 1]!.params[name.toLowerCase()] = value;
    } else {
      challenges.push({ scheme: name.toLowerCase(), params: {} });
    }
  }
  const bearer = challenges.find((c) => c.scheme === 'bearer');
  if (bearer) return { scheme: 'bearer', params: bearer.params };
  const basic = challenges.find((c) => c.scheme === 'basic');
  return basic ? { scheme: 'basic', params: basic.params } : undefined;
}

export function basicAuthorization(auth: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
}
