// The zone server and its client, end to end over a real Unix socket: exec streamed both ways,
// tty resize, signals and exit codes, files, logs, events, Prometheus text, typed errors. The zones
// are the ChildProcessZone test double (real child processes, not VMs): this tests the HTTP layer;
// test/support/zone-suite.ts runs the same API against real zones.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { AbortedError, InvalidConfigError } from '../../src/errors';
import { connect } from '../../src/server/client';
import { BadRequestError, ServerUnavailableError } from '../../src/server/errors';
import { OwnedZones } from '../../src/server/manager';
import { ZoneServer } from '../../src/server/server';
import { ZoneClosedError, ZoneNotFoundError, ZoneStartError } from '../../src/zone/errors';
import { OutputLimitError } from '../../src/host/emulated/errors';
import { ChildProcessZone } from '../support/child-process-zone';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-server-test-'));
process.env.BULKHEAD_RUNTIME_DIR = path.join(work, 'run');
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

/** Rejects with an instance of `cls` whose fields match `fields`. */
async function rejectsAs(t: Test, p: Promise<unknown>, cls: new (...args: never[]) => Error, fields: Record<string, unknown>, what?: string) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, cls, what ?? `rejects with ${cls.name}`);
  t.match(err, fields, what ?? `${cls.name} has ${Object.keys(fields).join(', ')}`);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A raw request on the socket, for what the client library would never send. */
function raw(socket: string, method: string, p: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: p, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('served zones through connect()', async (t) => {
  const socket = path.join(work, 'serve.sock');
  const zones = new OwnedZones((spec) => ChildProcessZone.start(spec));
  const server = await ZoneServer.listen({ manager: zones, socket });
  t.teardown(async () => {
    await server.close();
    await zones.close();
  });
  t.equal(fs.statSync(socket).mode & 0o777, 0o600, 'the socket is 0600');

  const client = await connect(socket);
  t.teardown(() => client.close());
  t.match(await client.health(), { ok: true, api: 1, canCreate: true });
  const zone = await client.create({ image: 'busybox', name: 'served', labels: { team: 'a' } });
  t.teardown(() => zone.destroy()); // subtests run after this function returns: no `await using` here
  t.equal(zone.state, 'running', 'create resolves once it runs');
  t.equal(zone.backend, 'remote');
  t.same(zone.labels, { team: 'a' });
  t.match(await client.list(), [{ id: zone.id, name: 'served', state: 'running' }]);

  t.test('echo, exit codes, signals, stdout and stderr apart', async (t) => {
    const r = await zone.exec(['echo', 'hello']);
    t.match(r, { stdout: 'hello\n', stderr: '', exitCode: 0, signal: null, timedOut: false });
    t.match(await zone.exec(['sh', '-c', 'exit 7']), { exitCode: 7, signal: null });
    t.match(await zone.exec(['sh', '-c', 'kill -TERM $$']), { exitCode: null, signal: 'SIGTERM' });
    const apart = await zone.exec(['sh', '-c', 'echo out; echo err >&2; echo out2']);
    t.equal(apart.stdout, 'out\nout2\n');
    t.equal(apart.stderr, 'err\n');
    const p = zone.spawn(['sleep', '30']);
    t.ok((await p.pid) > 0, 'pid arrives');
    p.kill('SIGKILL');
    t.match(await p.wait(), { exitCode: null, signal: 'SIGKILL' });
  });

  t.test('10 MiB through cat both ways, with a matching checksum and backpressure', async (t) => {
    const data = randomBytes(10 * 1024 * 1024);
    const r = await zone.exec(['cat'], { stdin: data });
    t.equal(r.exitCode, 0);
    t.equal(r.stdoutBytes.length, data.length);
    t.equal(sha(r.stdoutBytes), sha(data), 'checksum matches');
    const inZone = await zone.exec(['sha256sum'], { stdin: data });
    t.equal(inZone.stdout.split(' ')[0], sha(data), 'the zone saw the same bytes');
    // A reader that stops reading: the process blocks on a full window, nothing is lost.
    const slow = zone.spawn(['head', '-c', '8388608', '/dev/zero']);
    slow.stdin.end();
    slow.stdout.pause();
    const ended = new Promise((r) => slow.stdout.once('end', r));
    await new Promise((r) => setTimeout(r, 300));
    let got = 0;
    slow.stdout.on('data', (c: Buffer) => (got += c.length));
    slow.stdout.resume();
    await slow.wait();
    await ended;
    t.equal(got, 8 * 1024 * 1024, 'every byte after a paused reader');
  });

  t.test('a tty with resize', async (t) => {
    const p = zone.spawn(['sh'], { tty: { cols: 80, rows: 24 } });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const until = async (re: RegExp) => {
      for (let i = 0; i < 100 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      return re.test(out);
    };
    p.stdin.write('stty size; [ -t 0 ] && echo IS-A-TTY\n');
    t.ok(await until(/24 80/), 'stty size sees 24 80');
    t.ok(await until(/IS-A-TTY/), 'stdin is a terminal');
    p.resize(100, 40);
    await new Promise((r) => setTimeout(r, 100));
    p.stdin.write('stty size\n');
    t.ok(await until(/40 100/), 'after resize: 40 100');
    p.stdin.write('exit 3\n');
    t.match(await p.wait(), { exitCode: 3 });
    t.throws(() => zone.spawn(['true']).resize(1, 1), { code: 'INVALID_STATE' }, 'resize of a non-tty process is refused');
  });

  t.test('env, cwd, user; timeout and AbortSignal across the wire', async (t) => {
    const r = await zone.exec(['sh', '-c', 'echo $GREETING; pwd; id -u'], { env: { GREETING: 'hi' }, cwd: '/tmp', user: 'nobody' });
    t.equal(r.stdout, 'hi\n/tmp\n65534\n');
    const slow = await zone.exec(['sleep', '30'], { timeoutMs: 200 });
    t.match(slow, { timedOut: true, exitCode: null, signal: 'SIGKILL' });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const started = Date.now();
    await t.rejects(zone.exec(['sleep', '30'], { signal: ac.signal }), AbortedError);
    t.ok(Date.now() - started < 5000, 'abort ends it promptly');
    await t.rejects(zone.exec(['true'], { signal: AbortSignal.abort() }), AbortedError, 'an aborted signal: rejected before it starts');
    await t.rejects(zone.exec(['sh', '-c', 'head -c 2000000 /dev/zero'], { maxBuffer: 1000 }), OutputLimitError);
  });

  t.test('16 concurrent execs', async (t) => {
    const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => zone.exec(['sh', '-c', `echo ${i}; exit ${i}`])));
    rs.forEach((r, i) => {
      t.equal(r.stdout, `${i}\n`);
      t.equal(r.exitCode, i);
    });
  });

  t.test('files', async (t) => {
    const data = randomBytes(5 * 1024 * 1024);
    await zone.files.mkdir('/srv/a/b', { recursive: true });
    await zone.files.write('/srv/a/b/blob', data, { mode: 0o640 });
    t.equal(sha(await zone.files.read('/srv/a/b/blob')), sha(data), '5 MiB written and read back');
    t.match(await zone.files.stat('/srv/a/b/blob'), { type: 'file', size: data.length, mode: 0o640 });
    const chunks: Buffer[] = [];
    for await (const c of zone.files.readStream('/srv/a/b/blob')) chunks.push(c as Buffer);
    t.equal(sha(Buffer.concat(chunks)), sha(data), 'readStream');
    await zone.files.write('/srv/a/streamed', Readable.from([Buffer.from('one '), Buffer.from('two')]));
    t.equal((await zone.files.read('/srv/a/streamed')).toString(), 'one two', 'a stream written');
    t.equal((await zone.exec(['cat', '/srv/a/streamed'])).stdout, 'one two', 'the zone sees it');
    t.same((await zone.files.list('/srv/a')).sort((a, b) => a.name.localeCompare(b.name)), [
      { name: 'b', type: 'directory' },
      { name: 'streamed', type: 'file' },
    ]);
    await zone.files.rename('/srv/a/streamed', '/srv/a/moved');
    t.equal(await zone.files.exists('/srv/a/streamed'), false);
    t.equal(await zone.files.exists('/srv/a/moved'), true);
    await zone.files.remove('/srv/a', { recursive: true });
    t.equal(await zone.files.exists('/srv/a'), false);
    await t.rejects(zone.files.read('/no/such/file'), { code: 'SERVER_ERROR', message: /ENOENT/ }, 'a missing file is an error, not a hang');
    const broken = zone.files.readStream('/no/such/file');
    await t.rejects(new Promise((_, reject) => broken.once('error', reject)), /ENOENT/);
  });

  t.test('metrics and Prometheus text', async (t) => {
    const m = await zone.metrics();
    t.ok(m.guest && m.guest.memory.totalBytes > 0, 'guest figures');
    const text = await client.prometheus();
    t.match(text, new RegExp(`^bulkhead_zone_info\\{zone_id="${zone.id}",zone_name="served",image="busybox",backend="kvm",state="running"\\} 1$`, 'm'));
    t.match(text, new RegExp(`^bulkhead_zone_guest_memory_total_bytes\\{zone_id="${zone.id}",zone_name="served"\\} \\d+`, 'm'));
    t.match(text, /^bulkhead_zones\{state="running"\} 1$/m);
    // Every line is a comment or a sample in the text format.
    for (const line of text.split('\n').filter(Boolean)) {
      t.ok(/^# (HELP|TYPE) \w+ .+$/.test(line) || /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="[^"]*",?)*\})? -?[0-9.e+-]+$/.test(line), `parses: ${line}`);
    }
  });

  t.test('events and logs, with follow', async (t) => {
    await using z = await client.create({ image: 'busybox', cmd: ['sh', '-c', 'echo first; sleep 0.5; echo second'], keepAlive: true });
    const seen: string[] = [];
    const ac = new AbortController();
    const follow = (async () => {
      for await (const e of z.logs({ follow: true, signal: ac.signal })) {
        seen.push(e.text);
        if (e.text === 'second') ac.abort();
      }
    })();
    await follow;
    t.ok(seen.includes('first') && seen.includes('second'), 'followed the console as it came');
    const replay: string[] = [];
    for await (const e of z.logs()) replay.push(e.text);
    t.ok(replay.includes('first'), 'replayed without follow');
    const states: string[] = [];
    const events = (async () => {
      for await (const e of z.events()) if (e.type === 'state') states.push(e.state);
    })();
    await z.stop();
    t.equal(z.state, 'exited');
    await z.destroy();
    await events;
    t.same(states, ['booting', 'running', 'stopping', 'exited', 'destroyed'], 'the whole state history, mirrored');
  });

  t.test('typed errors round-trip', async (t) => {
    await rejectsAs(t, client.create({ image: 'busybox', memoryMiB: 10 ** 9 }), InvalidConfigError, { field: 'memoryMiB', code: 'INVALID_CONFIG'  });
    await rejectsAs(t, client.create({ image: 'no-such-image' }), ZoneStartError, { stage: 'image', message: /no-such-image/  });
    await rejectsAs(t, client.get('nonexistent'), ZoneNotFoundError, { ref: 'nonexistent'  });
    await rejectsAs(t, client.create({ image: 'busybox', name: 'served' }), InvalidConfigError, { field: 'name'  }, 'a taken name');
    const stopped = await client.create({ image: 'busybox' });
    await stopped.stop();
    t.throws(() => stopped.spawn(['true']), ZoneClosedError, 'spawn on an exited zone: the server says closed');
    await rejectsAs(t, stopped.exec(['true']), ZoneClosedError, { state: 'exited'  });
    await stopped.destroy();
    await t.rejects(stopped.exec(['true']), ZoneClosedError);
  });

  t.test('bad requests get a 4xx and the server keeps serving', async (t) => {
    const bad = await raw(socket, 'POST', '/zones', '{"image": "busybox",');
    t.equal(bad.status, 400);
    t.match(JSON.parse(bad.body), { error: { code: 'BAD_REQUEST', message: /malformed JSON/ } });
    t.match(await raw(socket, 'GET', '/nowhere'), { status: 404 });
    t.match(await raw(socket, 'PATCH', '/zones'), { status: 405 });
    t.match(await raw(socket, 'GET', `/zones/${zone.id}/exec`), { status: 426 });
    const declared = await raw(socket, 'POST', '/zones', '{}', { 'content-length': String(100 * 1024 * 1024) }).catch((e: Error) => e);
    t.ok(declared instanceof Error || declared.status === 413, 'a declared 100 MiB body: 413');
    // A real 100 MiB body, streamed.
    const big = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath: socket, method: 'POST', path: '/zones', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < 100) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    }).catch((e: Error) => e);
    t.equal(big, 413, 'a streamed 100 MiB body: 413');
    t.match(await client.health(), { ok: true }, 'still serving');
    t.equal((await zone.exec(['echo', 'still'])).stdout, 'still\n');
    // A broken exec stream: garbage after the upgrade.
    const garbage = await new Promise<string>((resolve) => {
      const s = net.connect(socket);
      let text = '';
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
      s.write(`GET /zones/${zone.id}/exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: bulkhead-exec/1\r\n\r\n`);
      s.write(Buffer.from([0x77, 0, 0, 0, 1, 0]));
    });
    t.match(garbage, /101 Switching Protocols[\s\S]*unknown exec frame type/, 'an unknown frame: ERROR frame, connection closed');
    t.match(await client.health(), { ok: true }, 'still serving');
  });
});

t.test('the socket: 0600, another uid cannot connect; --group gives 0660', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-sock-'));
  fs.chmodSync(dir, 0o755); // the directory is open: only the socket's mode keeps others out
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 's.sock');
  const server = await ZoneServer.listen({ manager: new OwnedZones((s) => ChildProcessZone.start(s)), socket });
  t.teardown(() => server.close());
  t.equal(fs.statSync(socket).mode & 0o777, 0o600);
  const { spawnSync } = await import('node:child_process');
  const probe = `require('net').connect(${JSON.stringify(socket)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(1)})`;
  const other = spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', probe], { encoding: 'utf8', timeout: 20_000 });
  t.equal(other.stdout.trim(), 'EACCES', 'uid 65534 gets EACCES');
  await rejectsAs(t, connect(path.join(dir, 'none.sock')), ServerUnavailableError, { reason: 'missing'  });
  await rejectsAs(t, ZoneServer.listen({ manager: new OwnedZones((s) => ChildProcessZone.start(s)), socket }), InvalidConfigError, { field: 'socket', message: /one answers there now/ }, 'a live socket is not taken over');

  const grouped = path.join(dir, 'g.sock');
  const g = await ZoneServer.listen({ manager: new OwnedZones((s) => ChildProcessZone.start(s)), socket: grouped, group: 'nogroup' });
  t.teardown(() => g.close());
  const st = fs.statSync(grouped);
  t.equal(st.mode & 0o777, 0o660);
  t.equal(st.gid, 65534);
  const member = spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', probe.replace(JSON.stringify(socket), JSON.stringify(grouped))], { encoding: 'utf8', timeout: 20_000 });
  t.equal(member.stdout.trim(), 'CONNECTED', "a member of the socket's group connects");
  await rejectsAs(t, ZoneServer.listen({ manager: new OwnedZones((s) => ChildProcessZone.start(s)), socket: path.join(dir, 'x.sock'), group: 'no-such-group-here' }), InvalidConfigError, { field: 'group' });
});

t.test('over any Duplex (as through the emulated host connect())', async (t) => {
  const socket = path.join(work, 'duplex.sock');
  const zones = new OwnedZones((spec) => ChildProcessZone.start(spec));
  const server = await ZoneServer.listen({ manager: zones, socket });
  t.teardown(async () => {
    await server.close();
    await zones.close();
  });
  // A plain Duplex relaying to the socket, like the emulated host's relay: no net.Socket methods.
  const relay = (): Duplex => {
    const s = net.connect(socket);
    const d = new Duplex({
      read: () => void s.resume(),
      write: (c, _e, cb) => void s.write(c, () => cb()),
      final: (cb) => (s.end(), cb()),
      destroy: (err, cb) => (s.destroy(), cb(err)),
    });
    s.on('data', (c) => !d.push(c) && s.pause());
    s.on('end', () => d.push(null));
    s.on('error', (e) => d.destroy(e));
    return d;
  };
  const client = await connect({ connect: relay, describe: 'relay' }, { backend: 'emulated-host' });
  await using zone = await client.create({ image: 'busybox' });
  t.equal(zone.backend, 'emulated-host');
  const data = randomBytes(2 * 1024 * 1024);
  t.equal(sha((await zone.exec(['cat'], { stdin: data })).stdoutBytes), sha(data));
  client.close();
});

t.test('a killed server: every pending call ends at once with a typed error', async (t) => {
  const { spawn } = await import('node:child_process');
  const { tsNodeArgs } = await import('../e2e/fixtures/helpers');
  const socket = path.join(work, 'killed.sock');
  const child = spawn(process.execPath, [...tsNodeArgs(), path.join(__dirname, 'fixtures', 'serve-double.ts'), 'serve', socket], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env,
  });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('READY') && resolve());
    child.once('exit', (code) => reject(new Error(`serve-double exited ${code}`)));
  });
  // Whoever started the server may know how it ended: zones that lose it say so.
  let killedWith = '';
  const client = await connect({ connect: () => net.connect(socket), describe: socket, lastWords: () => killedWith || undefined });
  const zone = await client.create({ image: 'busybox' });
  const exec = zone.exec(['sleep', '600']);
  exec.catch(() => undefined); // settled below, after the kill
  const stream = zone.spawn(['cat']);
  stream.stdin.write('x');
  const logs = (async () => {
    for await (const _ of zone.logs({ follow: true })) void _;
  })();
  await zone.exec(['mkfifo', '/tmp/fifo']);
  const waitLong = zone.files.read('/tmp/fifo'); // blocks: nobody writes the fifo
  const fileBody = new PassThrough();
  fileBody.write('partial');
  const upload = zone.files.write('/tmp/never', fileBody);
  for (const p of [logs, upload, waitLong]) p.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  const killedAt = Date.now();
  killedWith = 'serve-double was killed with SIGKILL';
  child.kill('SIGKILL');
  const settled = await Promise.allSettled([exec, stream.wait(), logs, upload, waitLong]);
  const took = Date.now() - killedAt;
  for (const [i, s] of settled.entries()) {
    t.equal(s.status, 'rejected', `pending call ${i} rejected`);
    if (s.status === 'rejected') t.type(s.reason, ZoneClosedError, `call ${i}: ZoneClosedError (${(s.reason as Error).message})`);
  }
  t.ok(took < 2000, `all ended within ${took} ms`);
  t.equal(zone.state, 'failed');
  t.match(zone.exit, { reason: 'failed', failure: /server went away.*; serve-double was killed with SIGKILL$/ });
  await t.rejects(zone.exec(['true']), ZoneClosedError, 'later calls fail at once');
  await zone.destroy();
  t.equal(zone.state, 'destroyed');
  await t.rejects(connect(socket), ServerUnavailableError);
  void BadRequestError;
});
