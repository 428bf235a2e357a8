// The TS client against a hostile agent: a fake peer, written here, that answers with garbage,
// oversized frames, unknown stream ids, data beyond its credit, impossible statuses, or just
// hangs up. Each time the session must fail with a typed error, every pending call must end at
// once, and nothing may escape as an uncaught exception (tap fails the file if one does).
import t from 'tap';
import { Duplex } from 'node:stream';
import { AgentClient, AgentDisconnectedError, AgentProtocolError } from '../../src/zone/agent';
import { AgentType, encodeFrame, WINDOW, Writer } from '../../src/zone/agent/protocol';

interface HostFrame {
  stream: number;
  type: number;
  payload: Buffer;
}

/** A Duplex whose other end is `script`: it sees each host frame and may push bytes back. */
function fakeAgent(script: (f: HostFrame, push: (b: Buffer) => void, hangUp: () => void) => void): Duplex {
  let buf = Buffer.alloc(0);
  const d: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 12 && buf.length >= 12 + buf.readUInt32LE(0)) {
        const len = buf.readUInt32LE(0);
        const f = { stream: buf.readUInt32LE(4), type: buf[8]!, payload: buf.subarray(12, 12 + len) };
        buf = buf.subarray(12 + len);
        script(f, (b) => d.push(b), () => d.push(null));
      }
      cb();
    },
  });
  return d;
}

function helloOk(overrides: { version?: number; maxStreams?: number } = {}): Buffer {
  const p = new Writer()
    .u16(overrides.version ?? 1)
    .u32(1 << 20)
    .u32(WINDOW)
    .u16(overrides.maxStreams ?? 64)
    .u32(1)
    .u8(0)
    .str('fake-agent')
    .done();
  return encodeFrame(0, AgentType.HELLO_OK, 0, p);
}

const reply = (stream: number, pid = 42) => encodeFrame(stream, AgentType.REPLY, 0, new Writer().u32(pid).done());

/** A fake that shakes hands properly, then hands every request to `onRequest`. */
function afterHello(onRequest: (f: HostFrame, push: (b: Buffer) => void, hangUp: () => void) => void): Duplex {
  return fakeAgent((f, push, hangUp) => {
    if (f.type === 0x01) push(helloOk());
    else onRequest(f, push, hangUp);
  });
}

async function settlesWithin<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  try {
    return { value: await Promise.race([p, timeout]), ms: Date.now() - started };
  } catch (error) {
    return { error, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

t.test('handshake: garbage, silence, a wrong version, an early stream frame', async (t) => {
  const garbage = await settlesWithin(AgentClient.connect(fakeAgent((_f, push) => push(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')))), 2000);
  t.type(garbage.error, AgentProtocolError, `garbage: ${(garbage.error as Error).message}`);
  const silent = await settlesWithin(AgentClient.connect(fakeAgent(() => undefined), { handshakeTimeoutMs: 200 }), 2000);
  t.type(silent.error, AgentDisconnectedError, `silence: ${(silent.error as Error).message}`);
  const v2 = await settlesWithin(AgentClient.connect(fakeAgent((_f, push) => push(helloOk({ version: 2 })))), 2000);
  t.type(v2.error, AgentProtocolError, 'a version we did not offer');
  const early = await settlesWithin(AgentClient.connect(fakeAgent((_f, push) => push(reply(1)))), 2000);
  t.type(early.error, AgentProtocolError, 'a stream frame before HELLO_OK');
  const hangUp = await settlesWithin(AgentClient.connect(fakeAgent((_f, _push, bye) => bye())), 2000);
  t.type(hangUp.error, AgentDisconnectedError, 'a hang-up during the handshake');
  const ac = new AbortController();
  const aborted = AgentClient.connect(fakeAgent(() => undefined), { signal: ac.signal });
  ac.abort();
  t.match((await settlesWithin(aborted, 2000)).error, { code: 'ABORTED' }, 'an AbortSignal ends the handshake');
});

/** Each case: the fake's answer to the first request; every pending call must fail with `want`. */
const cases: Array<{ name: string; want: typeof AgentProtocolError | typeof AgentDisconnectedError; answer: (f: HostFrame, push: (b: Buffer) => void, hangUp: () => void) => void }> = [
  {
    name: 'an oversized frame (2 MiB length)',
    want: AgentProtocolError,
    answer: (_f, push) => push(Buffer.from([0, 0, 0x20, 0, 1, 0, 0, 0, AgentType.DATA, 0, 0, 0])),
  },
  { name: 'a REPLY for a stream never opened', want: AgentProtocolError, answer: (_f, push) => push(reply(99)) },
  {
    name: 'DATA beyond the granted credit',
    want: AgentProtocolError,
    answer: (f, push) => {
      push(reply(f.stream));
      for (let i = 0; i < 5; i++) push(encodeFrame(f.stream, AgentType.DATA, 0, Buffer.concat([Buffer.from([1]), Buffer.alloc(65536)])));
    },
  },
  {
    name: 'DATA on a channel the stream does not have (file content on an exec)',
    want: AgentProtocolError,
    answer: (f, push) => push(Buffer.concat([reply(f.stream), encodeFrame(f.stream, AgentType.DATA, 0, Buffer.from([3, 1]))])),
  },
  {
    name: 'an END with an impossible status',
    want: AgentProtocolError,
    answer: (f, push) => push(Buffer.concat([reply(f.stream), encodeFrame(f.stream, AgentType.END, 0, Buffer.from([7, 0, 0, 0, 0, 0]))])),
  },
  {
    name: 'an exit code above 255',
    want: AgentProtocolError,
    answer: (f, push) => push(Buffer.concat([reply(f.stream), encodeFrame(f.stream, AgentType.END, 0, new Writer().u8(0).u32(256).u8(0).done())])),
  },
  { name: 'an ERROR with an unknown code', want: AgentProtocolError, answer: (f, push) => push(encodeFrame(f.stream, AgentType.ERROR, 0, new Writer().u16(99).u32(0).str('?').done())) },
  {
    name: 'an ERROR message over 1 KiB',
    want: AgentProtocolError,
    answer: (f, push) => push(encodeFrame(f.stream, AgentType.ERROR, 0, new Writer().u16(5).u32(2).str('x'.repeat(5000)).done())),
  },
  { name: 'an unknown frame type', want: AgentProtocolError, answer: (f, push) => push(encodeFrame(f.stream, 0x7f, 0, Buffer.alloc(0))) },
  { name: 'frame flags set', want: AgentProtocolError, answer: (f, push) => push(encodeFrame(f.stream, AgentType.REPLY, 0x80, new Writer().u32(1).done())) },
  { name: 'reserved header bytes set', want: AgentProtocolError, answer: (f, push) => { const b = reply(f.stream); b[11] = 1; push(b); } },
  { name: 'a REPLY with trailing bytes', want: AgentProtocolError, answer: (f, push) => push(encodeFrame(f.stream, AgentType.REPLY, 0, Buffer.alloc(9))) },
  { name: 'a second HELLO_OK', want: AgentProtocolError, answer: (_f, push) => push(helloOk()) },
  { name: 'a PONG nobody asked for', want: AgentProtocolError, answer: (_f, push) => push(encodeFrame(0, AgentType.PONG, 0, new Writer().u64(12345n).done())) },
  {
    name: 'CREDIT for more stdin than was sent',
    want: AgentProtocolError,
    answer: (f, push) => push(Buffer.concat([reply(f.stream), encodeFrame(f.stream, AgentType.CREDIT, 0, new Writer().u8(0).u32(10).done())])),
  },
  { name: 'the agent reports a protocol error on stream 0', want: AgentProtocolError, answer: (_f, push) => push(encodeFrame(0, AgentType.ERROR, 0, new Writer().u16(1).u32(0).str('you broke it').done())) },
  { name: 'a hang-up mid-stream', want: AgentDisconnectedError, answer: (f, push, hangUp) => { push(reply(f.stream)); hangUp(); } },
];

for (const c of cases) {
  t.test(`hostile agent: ${c.name}`, async (t) => {
    let first = true;
    let secondStream: number | undefined;
    const io = afterHello((f, push, hangUp) => {
      if (f.type !== 0x03) return; // only requests drive the script
      if (first) {
        first = false;
        // A normal answer to the first request, so a process is running when things go wrong.
        push(reply(f.stream, 7));
      } else if (secondStream === undefined) {
        secondStream = f.stream;
        c.answer(f, push, hangUp);
      }
    });
    const client = await AgentClient.connect(io);
    const running = await client.exec(['sleep', '600'], { stdin: true });
    running.stdin!.write('some input');
    const pending: Array<Promise<unknown>> = [running.wait(), client.exec(['second']).then((p) => p.wait()), client.stat('/etc/passwd')];
    const results = await Promise.all(pending.map((p) => settlesWithin(p, 3000)));
    results.forEach((r, i) => {
      t.type(r.error, c.want, `pending call ${i} ends with ${c.want.name}: ${(r.error as Error)?.message}`);
      t.ok(r.ms < 2000, `at once (${r.ms} ms)`);
    });
    t.type(await client.closed, c.want, 'closed resolves with the same error');
    t.equal(client.isOpen, false);
    t.ok(io.destroyed, 'the connection is destroyed');
    await t.rejects(client.ping(), c.want, 'later calls reject too');
    t.ok(running.stdout.destroyed, 'stdout is destroyed (without an unhandled error event)');
  });
}

t.test('a well-behaved fake: credit goes back as stdout is consumed', async (t) => {
  const credits: number[] = [];
  const io = afterHello((f, push) => {
    if (f.type === 0x03) {
      push(reply(f.stream));
      for (let i = 0; i < 4; i++) push(encodeFrame(f.stream, AgentType.DATA, 0, Buffer.concat([Buffer.from([1]), Buffer.alloc(65536, i)])));
    } else if (f.type === 0x05) {
      credits.push(f.payload.readUInt32LE(1));
      // END only once everything was granted back: the reader consumed it all.
      if (credits.reduce((a, b) => a + b, 0) === 4 * 65536) push(encodeFrame(f.stream, AgentType.END, 0, new Writer().u8(0).u32(3).u8(0).done()));
    }
  });
  const client = await AgentClient.connect(io);
  const r = await client.run(['x']);
  t.equal(r.exitCode, 3);
  t.equal(r.stdout.length, 4 * 65536, 'the window filled exactly');
  t.equal(credits.reduce((a, b) => a + b, 0), 4 * 65536, 'every consumed byte was granted back');
  client.close();
  t.type(await client.closed, AgentDisconnectedError);
});
