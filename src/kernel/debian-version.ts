/**
 * Debian version ordering ([epoch:]upstream[-revision]), by the rules of deb-version(7), so that
 * "6.12.117-1~deb12u1" sorts after "6.12.99-1" and "~" sorts before anything, even the end.
 */

interface ParsedVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

function parse(version: string): ParsedVersion {
  const v = version.trim();
  const colon = v.indexOf(':');
  const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0;
  const rest = colon >= 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return {
    epoch: Number.isFinite(epoch) ? epoch : 0,
    upstream: dash >= 0 ? rest.slice(0, dash) : rest,
    revision: dash >= 0 ? rest.slice(dash + 1) : '',
  };
}

/** The weight of one character in the non-digit part: '~' lowest, then the end, then letters, then the rest. */
function order(ch: string | undefined): number {
  if (ch === undefined) return 0;
  if (ch === '~') return -1;
  if (/[A-Za-z]/.test(ch)) return ch.charCodeAt(0);
  return ch.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp: alternating runs of non-digits (compared by `order`) and digits (compared as numbers). */
function compareParts(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i]!)) || (j < b.length && !isDigit(b[j]!))) {
      const ca = i < a.length && !isDigit(a[i]!) ? a[i] : undefined;
      const cb = j < b.length && !isDigit(b[j]!) ? b[j] : undefined;
      const diff = order(ca) - order(cb);
      if (diff !== 0) return Math.sign(diff);
      if (ca !== undefined) i++;
      if (cb !== undefined) j++;
    }
    let na = '';
    let nb = '';
    while (i < a.length && isDigit(a[i]!)) na += a[i++];
    while (j < b.length && isDigit(b[j]!)) nb += b[j++];
    const diff = compareDigits(na, nb);
    if (diff !== 0) return diff;
  }
  return 0;
}

function isDigit(ch: string): boolean {
  return ch >= '0' && ch <= '9';
}

/** Compares two runs of digits as arbitrarily large numbers (no leading-zero or precision issues). */
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return Math.sign(x.length - y.length);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Negative, zero or positive as `a` sorts before, equal to, or after `b` (like `dpkg --compare-versions`). */
export function compareDebianVersions(a: string, b: string): number {
  const x = parse(a);
  const y = parse(b);
  if (x.epoch !== y.epoch) return Math.sign(x.epoch - y.epoch);
  return compareParts(x.upstream, y.upstream) || compareParts(x.revision, y.revision);
}
