/**
 * VMM memory overhead from /proc/PID/smaps: the process's resident memory minus the guest RAM it has
 * touched. Guest RAM is found by its mapping: ours is the memfd mapping named "bulkhead-guest-ram"
 * (shared memory, counted in RssShmem); QEMU's is an anonymous read-write private mapping exactly the
 * size of `-m` (counted in RssAnon). Everything else resident is the VMM's: its binary and libraries,
 * heap (including the kernel and initrd images it read), stacks.
 */

export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  /** kB, as smaps reports them. */
  sizeKb: number;
  rssKb: number;
  pssKb: number;
  anonKb: number;
}

export interface MemoryOverhead {
  /** Sum of Rss over every mapping (equals VmRSS up to the kernel's lazy counter updates). */
  rssKb: number;
  /** VmRSS from /proc/PID/status, for comparison. */
  vmRssKb: number;
  /** Rss of the guest RAM mapping(s): guest memory touched. */
  guestKb: number;
  /** rssKb - guestKb. */
  overheadKb: number;
  /** The same with Pss (shared library pages divided among the processes sharing them). */
  overheadPssKb: number;
  /** Where the overhead sits: file-backed mappings (binary, libraries), anonymous (heap, stacks), other. */
  breakdownKb: { file: number; anon: number; other: number };
  /** Estimated part of the anonymous overhead that is copies of the `imageSizes` files (see below). */
  imageCopiesKb: number;
  guestMappings: string[];
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+\S+\s+\S+\s+\d+\s*(.*)$/;

export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | undefined;
  for (const line of text.split('\n')) {
    const h = HEADER.exec(line);
    if (h) {
      cur = { start: BigInt(`0x${h[1]}`), end: BigInt(`0x${h[2]}`), perms: h[3]!, path: h[4]!.trim(), sizeKb: 0, rssKb: 0, pssKb: 0, anonKb: 0 };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const f = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (!f) continue;
    const kb = Number(f[2]);
    if (f[1] === 'Size') cur.sizeKb = kb;
    else if (f[1] === 'Rss') cur.rssKb = kb;
    else if (f[1] === 'Pss') cur.pssKb = kb;
    else if (f[1] === 'Anonymous') cur.anonKb = kb;
  }
  return out;
}

export type VmmKind = 'ours' | 'qemu';

/** The mappings that hold guest RAM for this VMM (see the file comment). */
export function guestRamMappings(maps: readonly Mapping[], vmm: VmmKind, guestMiB: number): Mapping[] {
  if (vmm === 'ours') return maps.filter((m) => m.path.includes('memfd:bulkhead-guest-ram'));
  const want = guestMiB * 1024;
  // QEMU may round the block up for alignment: accept up to 2 MiB more.
  return maps.filter((m) => m.path === '' && m.perms.startsWith('rw') && m.perms[3] === 'p' && m.sizeKb >= want && m.sizeKb <= want + 2048);
}

export function memoryOverhead(smaps: string, status: string, vmm: VmmKind, guestMiB: number, imageSizes: readonly number[] = []): MemoryOverhead {
  const maps = parseSmaps(smaps);
  const guest = guestRamMappings(maps, vmm, guestMiB);
  if (guest.length === 0) throw new Error(`no guest RAM mapping found for ${vmm} (${guestMiB} MiB) among ${maps.length} mappings`);
  if (vmm === 'qemu' && guest.length > 1) throw new Error(`${guest.length} candidate guest RAM mappings of ${guestMiB} MiB in QEMU: ambiguous`);
  const guestSet = new Set(guest);
  const sum = (ms: readonly Mapping[], f: (m: Mapping) => number): number => ms.reduce((s, m) => s + f(m), 0);
  const rest = maps.filter((m) => !guestSet.has(m));
  const file = rest.filter((m) => m.path.startsWith('/') && !m.path.includes('(deleted)'));
  const anon = rest.filter((m) => m.path === '' || m.path === '[heap]' || m.path.startsWith('[stack'));
  const rssKb = sum(maps, (m) => m.rssKb);
  const guestKb = sum(guest, (m) => m.rssKb);
  const overheadKb = rssKb - guestKb;
  const fileKb = sum(file, (m) => m.rssKb);
  const anonKb = sum(anon, (m) => m.rssKb);
  const imageCopiesKb = estimateImageCopies(anon.filter((m) => m.path === ''), imageSizes);
  return {
    rssKb,
    vmRssKb: Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN),
    guestKb,
    overheadKb,
    overheadPssKb: sum(rest, (m) => m.pssKb),
    breakdownKb: { file: fileKb, anon: anonKb, other: overheadKb - fileKb - anonKb },
    imageCopiesKb,
    guestMappings: guest.map((m) => `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.path || '[anon]'} size ${m.sizeKb} kB`),
  };
}

/**
 * A malloc'ed copy of a large file lands in its own anonymous mmap of file size + a header; the kernel
 * may merge it with neighbouring anonymous mappings (thread stacks, the other image), so sizes don't
 * match exactly. Each image, largest first, is attributed to an anonymous mapping with room for it,
 * counting at most the image's size of that mapping's remaining Rss. An estimate, labelled as such.
 */
export function estimateImageCopies(anon: readonly Mapping[], imageSizes: readonly number[]): number {
  const room = new Map(anon.map((m) => [m, { bytes: m.sizeKb * 1024, rssKb: m.rssKb }]));
  let kb = 0;
  for (const size of [...imageSizes].sort((a, b) => b - a)) {
    const fit = anon.filter((m) => room.get(m)!.bytes >= size).sort((a, b) => room.get(a)!.bytes - room.get(b)!.bytes)[0];
    if (!fit) continue;
    const r = room.get(fit)!;
    const take = Math.min(Math.ceil(size / 1024), r.rssKb);
    r.bytes -= size;
    r.rssKb -= take;
    kb += take;
  }
  return kb;
}
