// The agent on this host, in test mode (no boot mounts, a Unix socket instead of vsock), under
// ASan/UBSan, as PID 1 of its own PID namespace, driven through the TS client: exec, streams and
// backpressure, ttys, users, files, metrics, events, and a raw socket sending malformed frames.
// One agent serves every subtest; the ones that end the agent (main exit, power-off) start their own.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidConfigError } from '../../src/errors';
import { AgentClient, AgentDisconnectedError, AgentProtocolError, AgentRequestError } from '../../src/zone/agent';
import { agentArtifact } from '../../src/zone/agent/binary';
import { encodeFrame, encodeHello, HostType, Writer } from '../../src/zone/agent/protocol';
import { agentPidOf, haveUnshare, startLocalAgent, type LocalAgent } from './fixtures/local-agent';

t.setTimeout(240_000);

const missing = haveUnshare();
if (missing) {
  t.pass(`skipped: ${missing}`, { skip: missing });
} else {
  const etc = mkdtempSync(path.join(os.tmpdir(), 'bh-agent-etc-'));
  writeFileSync(
    path.join(etc, 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1234:Alice:/home/alice:/bin/sh\nbob:x:1235:1235::/home/bob:/bin/sh\n',
  );
  writeFileSync(path.join(etc, 'group'), 'root:x:0:\nalice:x:1234:\nstaff:x:50:alice\ndev:x:51:bob,alice\nbob:x:1235:\n');
  t.teardown(() => rmSync(etc, { recursive: true, force: true }));

  let agent: LocalAgent;
  let c: AgentClient;
  t.before(async () => {
    agent = await startLocalAgent({ etcDir: etc });
    c = await agent.connect();
  });
  t.teardown(async () => {
    c?.close();
    await agent?.stop();
  });

  t.test('handshake and ping', async (t) => {
    t.equal(c.info.version, 1);
    t.equal(c.info.agentPid, 1, 'the agent is PID 1 of its namespace');
    t.equal(c.info.mainState, 'none');
    t.equal(c.info.maxStreams, 64);
    const rtt = await c.ping();
    t.ok(rtt >= 0 && rtt < 5000, `ping round trip ${rtt.toFixed(2)} ms`);
  });

  t.test('exit codes and signals', async (t) => {
    t.equal((await c.run(['sh', '-c', 'exit 7'])).exitCode, 7, 'exit code 7');
    t.equal((await c.run(['true'])).exitCode, 0, 'exit code 0');
    const self = await c.run(['sh', '-c', 'kill -TERM $$']);
    t.same([self.exitCode, self.signal], [null, 'SIGTERM'], 'killed by its own SIGTERM');
    const sleeper = await c.exec(['sleep', '600']);
    t.ok(sleeper.pid > 1, `started with pid ${sleeper.pid}`);
    sleeper.kill('SIGKILL');
    const s = await sleeper.wait();
    t.same([s.exitCode, s.signal, s.signalNumber], [null, 'SIGKILL', 9], 'kill(SIGKILL) from the host');
    const hup = await c.exec(['sleep', '600']);
    hup.kill(1);
    t.equal((await hup.wait()).signal, 'SIGHUP', 'a signal by number');
    const err = await c.exec(['/no/such/program']).catch((e: unknown) => e);
    t.type(err, AgentRequestError, 'a missing program is a typed error');
    t.match(err, { kind: 'exec', errno: 'ENOENT' });
    const cancelled = await c.exec(['sleep', '600']);
    cancelled.cancel();
    t.match(await cancelled.wait().catch((e: unknown) => e), { kind: 'cancelled' }, 'cancel kills it; wait() says cancelled');
    t.throws(() => sleeper.kill('SIGNOPE'), InvalidConfigError, 'an unknown signal name is a typed error');
  });

  t.test('10 MiB through cat with a matching checksum, with backpressure both ways', async (t) => {
    const data = randomBytes(10 * 1024 * 1024);
    const started = Date.now();
    const p = await c.exec(['cat'], { stdin: true });
    const hash = createHash('sha256');
    let n = 0;
    // A slow reader at first: the agent must stop sending, not buffer without bound.
    p.stdout.pause();
    p.stdin!.end(data);
    await sleep(300);
    t.ok(p.stdout.readableLength <= 512 * 1024, `paused reader holds ${p.stdout.readableLength} bytes (window + high-water mark)`);
    p.stdout.on('data', (b: Buffer) => {
      hash.update(b);
      n += b.length;
    });
    p.stdout.resume();
    const s = await p.wait();
    t.equal(s.exitCode, 0);
    t.equal(n, data.length, '10 MiB came back');
    t.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'), 'sha256 matches');
    t.comment(`10 MiB through cat in ${Date.now() - started} ms, including a 300 ms pause (ASan build, Unix socket)`);
  });

  t.test('output left in a hung-up pipe while the host reads nothing: the agent idles, then delivers it', async (t) => {
    // The writer is killed with the pipe full and the stream out of credit: the pipe is hung up with
    // data in it. epoll reports that hang-up whatever it is asked for, so an agent that leaves the fd
    // registered spins at 100 % until the host reads again (it did: a zone's PID 1 starved its VM).
    const cpuTicks = (pid: number) => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15 of stat)
    };
    const pid = agentPidOf(agent.child.pid!);
    if (!pid) return void t.fail('could not find the agent under unshare');
    const p = await c.exec(['sh', '-c', 'head -c 8000000 /dev/zero & sleep 1; kill -9 $!; exit 5']);
    p.stdout.pause();
    await sleep(1500);
    const before = cpuTicks(pid);
    await sleep(1000);
    const spent = cpuTicks(pid) - before;
    t.ok(spent < 25, `the agent used ${spent} clock ticks in 1 s with the output stalled (a spin uses ~100)`);
    let n = 0;
    p.stdout.on('data', (b: Buffer) => (n += b.length));
    p.stdout.resume();
    const s = await p.wait();
    t.equal(s.exitCode, 5, 'the shell exited');
    t.ok(n > 256 * 1024, `what the pipe held came through once the host read again (${n} bytes)`);
  });

  t.test('wait() settles after a listener attached once the process started has had all its output', async (t) => {
    // A short command's REPLY, DATA and END can come in one read; the listener below is only
    // switched on a tick later. 200 rounds made the race show before wait() waited for it.
    let lost = 0;
    for (let i = 0; i < 200; i++) {
      const p = await c.exec(['echo', `round ${i}`]);
      const out: Buffer[] = [];
      p.stdout.on('data', (b: Buffer) => out.push(b));
      await p.wait();
      if (Buffer.concat(out).toString() !== `round ${i}\n`) lost++;
    }
    t.equal(lost, 0, 'no round lost its output');
  });

  t.test('stdout and stderr are kept apart', async (t) => {
    const r = await c.run(['sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done']);
    const want = (k: string) => Array.from({ length: 200 }, (_, i) => `${k}${i}\n`).join('');
    t.equal(r.stdout.toString(), want('out'), 'stdout has only stdout, in order');
    t.equal(r.stderr.toString(), want('err'), 'stderr has only stderr, in order');
  });

  t.test('a tty session with a resize', async (t) => {
    const p = await c.exec(['sh', '-c', 'tty; stty size; read line; stty size; echo "got $line"'], { tty: { rows: 30, cols: 100 } });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const until = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(out); i++) await sleep(25);
    };
    await until(/30 100/);
    t.match(out, /\/dev\/pts\/\d+/, 'stdin is a pty');
    t.match(out, /30 100/, 'the initial size');
    p.resize(50, 132);
    p.stdin!.write('hello\n');
    const s = await p.wait();
    t.equal(s.exitCode, 0);
    t.match(out, /50 132/, 'the size after resize');
    t.match(out, /got hello/, 'input reached it through the terminal');
    t.equal(p.stderr.readableEnded || p.stderr.readableLength === 0, true, 'stderr is empty with a tty');
    t.throws(() => p.resize(0, 10), InvalidConfigError);
  });

  t.test('16 concurrent execs', async (t) => {
    const started = Date.now();
    const runs = await Promise.all(
      Array.from({ length: 16 }, (_, i) => c.run(['sh', '-c', `sleep 0.5; echo job$0; exit $(($0 % 7))`, String(i)])),
    );
    runs.forEach((r, i) => {
      t.equal(r.stdout.toString(), `job${i}\n`);
      t.equal(r.exitCode, i % 7);
    });
    t.ok(Date.now() - started < 8000, `they ran at once (${Date.now() - started} ms for 16 × 0.5 s)`);
  });

  t.test('env, cwd and user', async (t) => {
    const r = await c.run(['sh', '-c', 'echo "$FOO|$EMPTY|$HOME"; pwd; id -u; id -g; id -G'], {
      env: { FOO: 'bar baz', EMPTY: '' },
      cwd: '/tmp',
      user: 'alice',
    });
    const [vars, cwd, uid, gid, groups] = r.stdout.toString().trim().split('\n');
    t.equal(vars, 'bar baz||/home/alice', 'env as given, HOME from passwd');
    t.equal(cwd, '/tmp');
    t.equal(uid, '1234');
    t.equal(gid, '1234');
    t.same(groups!.split(' ').map(Number).sort((a, b) => a - b), [50, 51, 1234], 'supplementary groups from /etc/group');
    const g = await c.run(['sh', '-c', 'id -u; id -g'], { user: 'alice:staff' });
    t.equal(g.stdout.toString(), '1234\n50\n', 'user:group by name');
    const n = await c.run(['sh', '-c', 'id -u; id -g; echo $HOME'], { user: '4321:4321' });
    t.equal(n.stdout.toString(), '4321\n4321\n/\n', 'numeric uid:gid without a passwd entry');
    const path = await c.run(['sh', '-c', 'echo $PATH']);
    t.match(path.stdout.toString(), /\/usr\/bin/, 'a default PATH when none is given');
    const bad = await c.exec(['true'], { user: 'mallory' }).catch((e: unknown) => e);
    t.match(bad, { kind: 'invalid', code: 'AGENT_REQUEST_FAILED' }, 'an unknown user is refused');
    const badCwd = await c.exec(['true'], { cwd: '/no/such/dir' }).catch((e: unknown) => e);
    t.match(badCwd, { kind: 'exec', errno: 'ENOENT' }, 'a missing cwd is refused');
    await t.rejects(c.exec(['true'], { cwd: 'relative' }), InvalidConfigError);
    await t.rejects(c.exec([]), InvalidConfigError);
    await t.rejects(c.exec(['x'], { env: ['NOEQUALS'] }), InvalidConfigError);
    await t.rejects(c.exec(['x'], { env: { A: 'a\0b' } }), InvalidConfigError);
  });

  t.test('orphans are reaped', async (t) => {
    await c.run(['sh', '-c', '(sleep 0.2 &) ; exit 0']);
    await sleep(600);
    const m = await c.metrics();
    t.same(m.processes.filter((p) => p.state === 'Z'), [], 'no zombie is left');
  });

  t.test('files: a 5 MiB binary write and read back, stat, list, mkdir, rename, remove', async (t) => {
    const dir = path.join(agent.dir, 'files');
    await c.mkdir(path.join(dir, 'a', 'b'), { parents: true, mode: 0o750 });
    t.equal((await c.stat(path.join(dir, 'a', 'b'))).type, 'directory');
    const data = randomBytes(5 * 1024 * 1024);
    const file = path.join(dir, 'a', 'blob.bin');
    t.equal(await c.writeFile(file, data, { mode: 0o640 }), data.length, 'the agent wrote 5 MiB');
    t.ok(readFileSync(file).equals(data), 'the file on disk is byte for byte what was sent');
    const back = await c.readFile(file);
    t.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(data).digest('hex'), 'read back matches');
    const st = await c.stat(file);
    t.match(st, { type: 'file', size: data.length, mode: 0o640, uid: 0 });
    t.same((await c.readFile(file, { offset: 10, length: 5 })), data.subarray(10, 15), 'a range');
    await c.writeFile(file, 'tail', { how: 'append' });
    t.equal((await c.stat(file)).size, data.length + 4, 'append');
    t.match(await failure(c.writeFile(file, 'x', { how: 'exclusive' })), { errno: 'EEXIST' }, 'exclusive refuses an existing file');
    async function* gen() {
      yield 'stream';
      yield Buffer.from('ed');
    }
    await c.writeFile(path.join(dir, 'gen.txt'), gen(), { parents: true });
    t.equal(readFileSync(path.join(dir, 'gen.txt'), 'utf8'), 'streamed', 'from an async iterable');
    mkdirSync(path.join(dir, 'many'));
    for (let i = 0; i < 600; i++) writeFileSync(path.join(dir, 'many', `f${i}`), '');
    const names = (await c.list(path.join(dir, 'many'))).map((e) => e.name);
    t.equal(names.length, 600, 'a listing over several REPLY batches');
    await c.rename(path.join(dir, 'gen.txt'), path.join(dir, 'moved.txt'));
    t.equal(readFileSync(path.join(dir, 'moved.txt'), 'utf8'), 'streamed', 'rename');
    t.match(await failure(c.remove(path.join(dir, 'a'))), { errno: 'ENOTEMPTY' }, 'a non-empty directory needs recursive');
    await c.remove(path.join(dir, 'a'), { recursive: true });
    t.match(await failure(c.stat(path.join(dir, 'a'))), { code: 'AGENT_REQUEST_FAILED', errno: 'ENOENT' }, 'removed');
    t.match(await failure(c.readFile(path.join(dir, 'nope'))), { errno: 'ENOENT' }, 'a missing file');
    t.match(await failure(c.readFile(dir)), { kind: 'invalid' }, 'a directory is not read as a file');
    t.throws(() => c.stat('relative/path'), InvalidConfigError);
    const empty = path.join(dir, 'empty');
    t.equal(await c.writeFile(empty, Buffer.alloc(0)), 0, 'an empty file');
    t.equal((await c.readFile(empty)).length, 0);
  });

  t.test('metrics are sane', async (t) => {
    const sleeper = await c.exec(['sleep', '30']);
    await sleep(300); // a just-exec'd task's RSS counters are synced lazily
    const m = await c.metrics();
    t.ok(m.memory.totalBytes > 64 * 1024 * 1024, 'memory total');
    t.ok(m.memory.availableBytes <= m.memory.totalBytes && m.memory.freeBytes <= m.memory.totalBytes);
    t.ok(m.cpu.cpus >= 1 && m.cpu.ticksPerSecond > 0, 'CPU count and tick rate');
    t.ok(m.cpu.userTicks + m.cpu.systemTicks + m.cpu.idleTicks > 0, 'CPU time');
    t.ok(m.uptimeMs > 0);
    const me = m.processes.find((p) => p.pid === 1);
    t.ok(me && /bulkhead-agent/.test(me.cmdline) && me.rssBytes > 0, 'the agent itself is listed with its RSS');
    const s = m.processes.find((p) => p.pid === sleeper.pid);
    t.match(s, { command: 'sleep', cmdline: 'sleep 30', ppid: 1 }, 'the exec is listed');
    t.ok(s!.rssBytes > 0);
    t.comment(`PSI on this host's kernel: ${m.pressure ? JSON.stringify(m.pressure.some) : 'absent'}`);
    sleeper.kill('SIGKILL');
    await sleeper.wait();
  });

  t.test('malformed frames from a raw socket: a protocol error, and the agent keeps serving', async (t) => {
    const other = await c.exec(['sh', '-c', 'read x; echo "still $x"'], { stdin: true });
    const cases: Array<[string, Buffer[]]> = [
      ['garbage', [Buffer.from('GET / HTTP/1.1\r\n\r\n')]],
      ['a request before HELLO', [encodeFrame(1, HostType.REQUEST, 0, Buffer.from([6]))]],
      ['an oversized frame', [encodeFrame(0, HostType.HELLO, 0, encodeHello()), Buffer.from([0, 0, 0x20, 0, 0, 0, 0, 0, 3, 0, 0, 0])]],
      ['a frame for a stream never opened', [encodeFrame(0, HostType.HELLO, 0, encodeHello()), encodeFrame(9, HostType.CREDIT, 0, new Writer().u8(1).u32(1).done())]],
      ['a truncated exec request', [encodeFrame(0, HostType.HELLO, 0, encodeHello()), encodeFrame(1, HostType.REQUEST, 0, Buffer.from([2, 5, 0, 9]))]],
      ['reserved bits set', [encodeFrame(0, HostType.HELLO, 0, encodeHello()), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0])]],
      ['stream ids going backwards', [encodeFrame(0, HostType.HELLO, 0, encodeHello()), encodeFrame(5, HostType.REQUEST, 0, Buffer.from([6])), encodeFrame(4, HostType.REQUEST, 0, Buffer.from([6]))]],
    ];
    for (const [label, frames] of cases) {
      const sock = await agent.rawSocket();
      const got = await talk(sock, frames);
      const err = findError(got);
      t.ok(err, `${label}: ERROR on stream 0`);
      t.equal(err?.code, 1, `${label}: code 1 (protocol)`);
      t.comment(`${label}: ${err?.message}`);
    }
    const oversizedMessage = findError(await talk(await agent.rawSocket(), [Buffer.from([0, 0, 0x20, 0, 0, 0, 0, 0, 1, 0, 0, 0])]));
    t.match(oversizedMessage?.message, /1 MiB/, 'the oversized frame is named as such');
    other.stdin!.end('serving\n');
    const out: Buffer[] = [];
    other.stdout.on('data', (b: Buffer) => out.push(b));
    t.equal((await other.wait()).exitCode, 0);
    t.equal(Buffer.concat(out).toString(), 'still serving\n', 'the other session went on undisturbed');
    t.ok((await c.ping()) >= 0, 'and still answers');
  });

  t.test('many sessions at once', async (t) => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => agent.connect()));
    const outs = await Promise.all(clients.map((k, i) => k.run(['echo', `s${i}`])));
    t.same(outs.map((o) => o.stdout.toString()), clients.map((_, i) => `s${i}\n`));
    // Up to 32 at once (the shared client is one of them); the 33rd is told why it is refused.
    clients.push(...(await Promise.all(Array.from({ length: 31 - clients.length }, () => agent.connect()))));
    const refused = await agent.connect().catch((e: unknown) => e);
    t.type(refused, AgentProtocolError, 'the 33rd session is refused with a typed error');
    t.match(refused, { reportedByAgent: true, message: /at most 32/ });
    clients.forEach((k) => k.close());
    await sleep(100);
    const again = await agent.connect();
    t.ok(again.isOpen, 'once the others closed, a new session is accepted');
    again.close();
  });

  t.test('the shared agent ends cleanly on SIGTERM, with no sanitizer report', async (t) => {
    c.close();
    t.same(await agent.stop(), { code: 0, signal: null });
    t.notMatch(agent.log(), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|Sanitizer has encountered/, 'no ASan/UBSan report in the agent log');
  });

  t.test('--stdio: one session on stdin/stdout; the agent exits when it ends', async (t) => {
    const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--uts', '--kill-child', agentArtifact('bulkhead-agent-asan'), '--test', '--stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const k = await AgentClient.connect(Duplex.from({ readable: child.stdout!, writable: child.stdin! }));
    t.equal((await k.run(['echo', 'over stdio'])).stdout.toString(), 'over stdio\n');
    k.close();
    t.equal(await exited, 0, 'it exits 0 when its one session ends');
    t.notMatch(log, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/, 'no sanitizer report');
  });

  t.test('a dying session ends every pending call at once, with a typed error', async (t) => {
    const victim = await startLocalAgent();
    const k = await victim.connect();
    const long = await k.exec(['sleep', '600']);
    const sub = await k.events();
    const next = sub.next();
    const wait = long.wait();
    async function* endless() {
      for (;;) {
        yield Buffer.alloc(65536);
        await sleep(5);
      }
    }
    const writing = k.writeFile(path.join(victim.dir, 'endless'), endless());
    writeFileSync(path.join(victim.dir, 'big'), Buffer.alloc(8 * 1024 * 1024));
    const reading = await k.createReadStream(path.join(victim.dir, 'big')); // nobody reads it
    await sleep(200);
    const started = Date.now();
    victim.child.kill('SIGKILL'); // unshare --kill-child takes the agent with it
    await t.rejects(wait, AgentDisconnectedError, 'wait() rejects');
    await t.rejects(next, AgentDisconnectedError, 'the events iterator rejects');
    await t.rejects(writing, AgentDisconnectedError, 'a streaming file write rejects');
    await t.rejects(reading.done, AgentDisconnectedError, 'a streaming file read rejects');
    t.ok(reading.stream.destroyed, 'and its stream is destroyed');
    await t.rejects(k.ping(), AgentDisconnectedError, 'new calls reject');
    await t.rejects(k.exec(['true']), AgentDisconnectedError);
    t.ok(Date.now() - started < 3000, `within ${Date.now() - started} ms`);
    await victim.stop();
  });

  t.test('the main process: events to every subscriber, then power-off (the test-mode agent exits)', async (t) => {
    const zone = await startLocalAgent();
    const watcher = await zone.connect();
    const sub = await watcher.events();
    const k = await zone.connect();
    const main = await k.launch(['sh', '-c', 'echo main out; echo main err >&2; exit 5'], { hostname: 'zone-test' });
    const out: Buffer[] = [];
    main.stdout.on('data', (b: Buffer) => out.push(b));
    const status = await main.wait();
    t.equal(status.exitCode, 5, 'the launch stream ends with the exit code');
    t.equal(Buffer.concat(out).toString(), 'main out\n', 'its output came on the launch stream');
    const ev = await sub.next();
    t.match(ev.value, { type: 'main-exit', pid: main.pid, status: { exitCode: 5 } }, 'the other session got the event');
    const late = await zone.connect().catch((e: unknown) => e);
    if (late instanceof AgentClient) {
      t.equal(late.info.mainState, 'exited');
      late.close();
    }
    const r = await zone.exited;
    t.same(r, { code: 0, signal: null }, 'then the agent powered off (exited 0 in test mode)');
    t.match(zone.log(), /main process \d+ exited with 5/);
    t.match(zone.log(), /power off/);
    t.notMatch(zone.log(), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|Sanitizer has encountered/, 'no sanitizer report');
    await zone.stop();
  });

  t.test('the main process with stayUp: exec goes on; a second launch is refused; SIGNAL_MAIN', async (t) => {
    const zone = await startLocalAgent();
    const k = await zone.connect();
    const main = await k.launch(['sleep', '600'], { stayUp: true, hostname: 'stay-up' });
    t.match(await failure(k.launch(['true'])), { kind: 'state' }, 'launch twice is refused');
    t.equal((await k.run(['hostname'])).stdout.toString(), 'stay-up\n', 'the hostname was set');
    const sub = await k.events();
    await k.signalMain('SIGTERM');
    t.equal((await main.wait()).signal, 'SIGTERM');
    t.equal((await sub.next()).value?.status.signal, 'SIGTERM', 'the event says SIGTERM');
    await sleep(300);
    t.equal((await k.run(['echo', 'alive'])).stdout.toString(), 'alive\n', 'the zone stayed up');
    t.match(await failure(k.signalMain()), { kind: 'state' }, 'no main process to signal any more');
    const sub2 = await k.events();
    t.equal((await sub2.next()).value?.type, 'main-exit', 'a late subscriber gets the event at once');
    sub2.close();
    t.same(await sub2.next(), { value: undefined, done: true }, 'a closed subscription ends');
    await k.shutdown();
    t.same(await zone.exited, { code: 0, signal: null }, 'SHUTDOWN ends the zone');
    t.notMatch(zone.log(), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|Sanitizer has encountered/, 'no sanitizer report');
    await zone.stop();
  });
}

/** The error a call fails with (or a failed assertion's marker if it succeeded). */
async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => 'it succeeded',
    (e: unknown) => e,
  );
}

interface RawFrame {
  stream: number;
  type: number;
  payload: Buffer;
}

/** Sends frames and collects what comes back until the agent closes the connection (or 5 s). */
function talk(sock: net.Socket, frames: Buffer[]): Promise<RawFrame[]> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => sock.destroy(), 5000);
    sock.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      const out: RawFrame[] = [];
      let off = 0;
      while (buf.length - off >= 12) {
        const len = buf.readUInt32LE(off);
        if (buf.length - off - 12 < len) break;
        out.push({ stream: buf.readUInt32LE(off + 4), type: buf[off + 8]!, payload: buf.subarray(off + 12, off + 12 + len) });
        off += 12 + len;
      }
      resolve(out);
    });
    for (const f of frames) sock.write(f);
  });
}

function findError(frames: RawFrame[]): { code: number; message: string } | undefined {
  const f = frames.find((x) => x.type === 0x48 && x.stream === 0);
  if (!f) return undefined;
  const len = f.payload.readUInt32LE(6);
  return { code: f.payload.readUInt16LE(0), message: f.payload.subarray(10, 10 + len).toString() };
}
