// Fuzzing of the TS side's decoders, as a seeded mutation loop bounded in time (Jazzer.js, the
// npm libFuzzer binding, does not load here: its 4.0 prebuild needs glibc 2.38 and Debian 12 has
// 2.36; 2.x builds from source with tools npm cannot fetch). Two targets:
//  1. each payload decoder, on mutations of valid payloads: it returns, or throws
//     AgentProtocolError, never anything else (no RangeError from a Buffer read, no TypeError);
//  2. a whole session, fed mutations of a valid agent byte stream in random chunk sizes: nothing
//     escapes, every pending call settles once the peer hangs up, and with a BulkheadError.
// BH_FUZZ_SECONDS (default 6 per target) and BH_FUZZ_SEED change the bounds.
import t from 'tap';
import { Duplex } from 'node:stream';
import { BulkheadError } from '../../src/errors';
import { AgentClient, AgentProtocolError } from '../../src/zone/agent';
import {
  AgentType,
  decodeError,
  decodeEvent,
  decodeHelloOk,
  decodeListBatch,
  decodeMetrics,
  encodeFrame,
  FrameDecoder,
  Reader,
  readExitStatus,
  readStat,
  WINDOW,
  Writer,
} from '../../src/zone/agent/protocol';

const SECONDS = Number(process.env.BH_FUZZ_SECONDS ?? 6);
const SEED = Number(process.env.BH_FUZZ_SEED ?? 20261201);

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x41, 0x48];

function mutate(rand: () => number, input: Buffer, other: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = 1 + Math.floor(rand() * 4);
  for (let k = 0; k < n; k++) {
    const at = Math.floor(rand() * Math.max(1, b.length));
    switch (Math.floor(rand() * 7)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << Math.floor(rand() * 8));
        break;
      case 1:
        if (b.length) b[at] = INTERESTING[Math.floor(rand() * INTERESTING.length)]!;
        break;
      case 2: // a u32 to an extreme (lengths and counts)
        if (b.length >= at + 4) b.writeUInt32LE([0, 0xffffffff, 0x7fffffff, 0x100000, 0x100001, 65537][Math.floor(rand() * 6)]!, at);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(rand() * 16)))]);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 16) }, () => Math.floor(rand() * 256))), b.subarray(at)]);
        break;
      case 5: // splice in a piece of another input
        b = Buffer.concat([b.subarray(0, at), other.subarray(Math.floor(rand() * other.length))]);
        break;
      case 6:
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

// ---- valid payloads ---------------------------------------------------------------------

const stat = (w: Writer) => w.u8(1).u32(0o644).u32(0).u32(0).u64(5).u64(1700000000).u32(5);
const status = (w: Writer) => w.u8(0).u32(3).u8(0);
const psi = (w: Writer) => w.u32(150).u32(20).u32(5).u64(123456);
function metrics(): Buffer {
  const w = new Writer().u64(1234);
  for (let i = 0; i < 8; i++) w.u64(1 << 20);
  w.u8(1);
  psi(w);
  psi(w);
  w.u32(100).u16(2);
  for (let i = 0; i < 8; i++) w.u64(i * 100);
  w.u32(12).u32(34).u32(56).u32(2).u8(0);
  for (const pid of [1, 2]) w.u32(pid).u32(pid - 1).u32(0).u8(83).u32(1).u64(4096).u64(1).u64(2).u64(3).str('init').str('/init --x');
  return w.done();
}
const helloOkPayload = () => new Writer().u16(1).u32(1 << 20).u32(WINDOW).u16(64).u32(1).u8(1).str('bulkhead-agent 0.1.0').done();

const decoders: Array<{ name: string; valid: Buffer; decode: (b: Buffer) => unknown }> = [
  { name: 'HELLO_OK', valid: helloOkPayload(), decode: decodeHelloOk },
  { name: 'ERROR', valid: new Writer().u16(5).u32(2).str('open /x: No such file').done(), decode: decodeError },
  { name: 'METRICS', valid: metrics(), decode: decodeMetrics },
  { name: 'EVENT', valid: status(new Writer().u8(1).u32(7)).done(), decode: decodeEvent },
  { name: 'LIST batch', valid: stat(stat(new Writer().u16(2).str('a')).str('b')).done(), decode: decodeListBatch },
  {
    name: 'stat',
    valid: stat(new Writer()).done(),
    decode: (b) => {
      const r = new Reader(b, 'stat');
      readStat(r);
      r.end();
    },
  },
  {
    name: 'status',
    valid: status(new Writer()).done(),
    decode: (b) => {
      const r = new Reader(b, 'status');
      readExitStatus(r);
      r.end();
    },
  },
  {
    name: 'frame stream',
    valid: Buffer.concat([encodeFrame(0, AgentType.HELLO_OK, 0, helloOkPayload()), encodeFrame(3, AgentType.END, 0, Buffer.alloc(6))]),
    decode: (b) => new FrameDecoder().push(b, () => undefined),
  },
];

t.test('payload decoders: return or throw AgentProtocolError, nothing else', async (t) => {
  const rand = prng(SEED);
  const end = Date.now() + SECONDS * 1000;
  let runs = 0;
  const accepted = new Map<string, number>();
  for (const d of decoders) t.doesNotThrow(() => d.decode(d.valid), `${d.name}: the valid seed decodes`);
  while (Date.now() < end) {
    for (const d of decoders) {
      const input = mutate(rand, d.valid, decoders[Math.floor(rand() * decoders.length)]!.valid);
      runs++;
      try {
        d.decode(input);
        accepted.set(d.name, (accepted.get(d.name) ?? 0) + 1);
      } catch (err) {
        if (!(err instanceof AgentProtocolError)) {
          t.fail(`${d.name} threw ${(err as Error).name} on ${input.toString('hex').slice(0, 400)}: ${(err as Error).message}`);
          return;
        }
      }
    }
  }
  t.pass(`${runs} inputs, no finding (seed ${SEED}); accepted mutants: ${JSON.stringify(Object.fromEntries(accepted))}`);
});

// ---- whole sessions ---------------------------------------------------------------------

/** A valid agent stream for the requests the client opens below, in this order (streams 1..6). */
function sessionSeed(): { hello: Buffer; rest: Buffer } {
  const f = (s: number, type: number, p: Buffer | Writer = Buffer.alloc(0)) => encodeFrame(s, type, 0, p instanceof Writer ? p.done() : p);
  return {
    hello: f(0, AgentType.HELLO_OK, helloOkPayload()),
    rest: Buffer.concat([
      f(1, AgentType.REPLY, new Writer().u32(9)),
      f(1, AgentType.DATA, Buffer.from([1, 104, 105])),
      f(1, AgentType.DATA, Buffer.from([2, 33])),
      f(1, AgentType.CREDIT, new Writer().u8(0).u32(2)),
      f(1, AgentType.END, status(new Writer())),
      f(2, AgentType.REPLY, stat(new Writer())),
      f(2, AgentType.DATA, Buffer.from([3, 1, 2, 3, 4, 5])),
      f(2, AgentType.END, new Writer().u64(5)),
      f(3, AgentType.REPLY, stat(new Writer().u16(1).str('etc'))),
      f(3, AgentType.END, new Writer().u32(1).u8(0)),
      f(4, AgentType.END, metrics()),
      f(5, AgentType.REPLY),
      f(5, AgentType.EVENT, status(new Writer().u8(1).u32(9))),
      f(6, AgentType.ERROR, new Writer().u16(5).u32(2).str('stat /nope: No such file or directory')),
    ]),
  };
}

async function runSession(hello: Buffer, rest: Buffer, rand: () => number): Promise<string | undefined> {
  let requests = 0;
  let pushRest: (() => void) | undefined;
  const io: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (chunk.length >= 12 && chunk[8] === 0x01) io.push(hello);
      if (chunk.length >= 12 && chunk[8] === 0x03 && ++requests === 6) pushRest?.();
      cb();
    },
  });
  pushRest = () => {
    // Random chunk sizes, then hang up: every pending call must then settle.
    setImmediate(() => {
      for (let off = 0; off < rest.length; ) {
        const n = 1 + Math.floor(rand() * 64);
        io.push(rest.subarray(off, off + n));
        off += n;
      }
      io.push(null);
    });
  };
  let client: AgentClient;
  try {
    client = await AgentClient.connect(io, { handshakeTimeoutMs: 50 }); // a truncated HELLO_OK waits this long
  } catch (err) {
    return err instanceof BulkheadError ? undefined : `connect threw ${(err as Error).name}: ${(err as Error).message}`;
  }
  const calls: Array<Promise<unknown>> = [
    client.exec(['x'], { stdin: true }).then((p) => p.wait()),
    client.readFile('/f'),
    client.list('/'),
    client.metrics(),
    client.events().then((s) => s.next()),
    client.stat('/nope'),
  ];
  // Requests go out synchronously only if slots are free; if a mutated HELLO_OK shrank the
  // stream limit, the rest never opens: hang up after a moment so those calls settle too.
  setTimeout(() => {
    if (requests < 6) pushRest?.();
  }, 20);
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    Promise.allSettled(calls),
    new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), 3000))),
  ]);
  clearTimeout(timer);
  if (settled === 'hang') return 'a call was still pending 3 s after the peer hung up';
  for (const r of settled) {
    if (r.status === 'rejected' && !(r.reason instanceof BulkheadError)) {
      return `a call rejected with ${(r.reason as Error)?.name}: ${(r.reason as Error)?.message}`;
    }
  }
  return undefined;
}

t.test('whole sessions: mutated agent streams never escape, never hang', async (t) => {
  const rand = prng(SEED + 1);
  const seed = sessionSeed();
  t.equal(await runSession(seed.hello, seed.rest, rand), undefined, 'the valid seed runs clean');
  const end = Date.now() + SECONDS * 1000;
  let runs = 0;
  while (Date.now() < end) {
    const hello = rand() < 0.1 ? mutate(rand, seed.hello, seed.rest) : seed.hello;
    const rest = mutate(rand, seed.rest, seed.hello);
    const finding = await runSession(hello, rest, rand);
    runs++;
    if (finding) {
      t.fail(`${finding}; input ${Buffer.concat([hello, rest]).toString('hex').slice(0, 600)}`);
      return;
    }
  }
  t.pass(`${runs} sessions, no finding (seed ${SEED + 1})`);
});
