// The emulated host end to end, on the run's shared host: inside must look like a hardware
// virtualization host (svm in cpuinfo, kvm_amd, /dev/kvm) that runs the real host's node, and
// run() / spawn() must keep their promises: process groups and hard deadlines, streams with
// backpressure, bounded buffers, bytes kept as bytes, files written after boot seen inside.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { emulatedHost, testKernel } from '../support/emulated-host';

t.setTimeout(60 * 60_000); // includes building the host kernel on a machine that never did

t.test('emulated host', async (t) => {
  const host = await emulatedHost(t);
  if (!host) return;

  t.test('uname -a', async (t) => {
    const r = await host.run(['uname', '-a']);
    t.equal(r.exitCode, 0);
    t.match(r.stdout, /^Linux bulkhead-emulated 6\.12\.\S+ .* x86_64/);
    t.equal(host.kernelRelease, r.stdout.split(' ')[2]);
  });

  t.test('hardware virtualization inside: svm, kvm_amd, /dev/kvm', async (t) => {
    const cpuinfo = await host.run(['cat', '/proc/cpuinfo']);
    t.equal(cpuinfo.exitCode, 0);
    t.match(cpuinfo.stdout, /^flags\s*:.*\bsvm\b/m, 'svm flag');
    const kvm = await host.run(['ls', '-l', '/dev/kvm']);
    t.equal(kvm.exitCode, 0, kvm.stderr);
    t.match(kvm.stdout, /^c\S+ .* 10, 232 .*\/dev\/kvm$/m, '/dev/kvm is the misc char device 10:232');
    const mod = await host.run(['ls', '/sys/module/kvm_amd/parameters']);
    t.equal(mod.exitCode, 0, 'kvm_amd is built in');
    t.match(mod.stdout, /\bnested\b/);
  });

  t.test('bulkhead doctor inside reports hardware virtualization', async (t) => {
    const r = await host.bulkhead(['doctor', '--json']);
    t.equal(r.exitCode, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { kvm: { mode: string; accessible: boolean }; zones: { backend: string } };
    t.equal(report.kvm.mode, 'hardware', 'kvm.mode inside the emulated host');
    t.equal(report.zones.backend, 'kvm', 'inside, zones run in-process');
    t.equal(report.kvm.accessible, true, '/dev/kvm is usable inside');
  });

  t.test("the host's node runs inside", async (t) => {
    const r = await host.run(['node', '-e', 'console.log(1+1)']);
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(r.stdout, '2\n');
    const same = await host.run([process.execPath, '-p', 'process.version']);
    t.equal(same.stdout.trim(), process.version, 'same node binary, same path');
  });

  t.test('nonzero exit codes and stderr come back', async (t) => {
    const r = await host.run(['sh', '-c', 'echo out; echo oops >&2; exit 42']);
    t.equal(r.exitCode, 42);
    t.equal(r.stdout, 'out\n');
    t.equal(r.stderr, 'oops\n');
    const missing = await host.run(['/no/such/command']);
    t.equal(missing.exitCode, 127, 'a missing command exits 127 like a shell');
    t.match(missing.stderr, /ENOENT/);
    const killed = await host.run(['sh', '-c', 'kill -TERM $$']);
    t.equal(killed.exitCode, null);
    t.equal(killed.signal, 'SIGTERM');
  });

  t.test('stdin, cwd and env', async (t) => {
    const r = await host.run(['sh', '-c', 'pwd; echo "$GREETING"; cat'], {
      cwd: '/usr/share',
      env: { GREETING: 'héllo' },
      stdin: 'from stdin\n',
    });
    t.equal(r.stdout, '/usr/share\nhéllo\nfrom stdin\n');
    const home = await host.run(['sh', '-c', 'echo $HOME; pwd']);
    t.equal(home.stdout, `${os.homedir()}\n${process.cwd()}\n`, 'default cwd and HOME are the caller’s');
  });

  t.test('bytes stay bytes: invalid UTF-8 and NULs come back unchanged', async (t) => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a, 0xe2, 0x82]);
    const r = await host.run(['cat'], { stdin: bytes });
    t.same(r.stdoutBytes, bytes, 'stdoutBytes is exactly what cat wrote');
  });

  t.test('streaming output arrives as it is produced', async (t) => {
    const chunks: { at: number; text: string }[] = [];
    const r = await host.run(['sh', '-c', 'echo one; sleep 1; echo two >&2; echo three'], {
      onStdout: (d) => chunks.push({ at: Date.now(), text: 'out:' + d.toString() }),
      onStderr: (d) => chunks.push({ at: Date.now(), text: 'err:' + d.toString() }),
    });
    t.equal(r.exitCode, 0);
    t.equal(chunks.map((c) => c.text).join(''), 'out:one\nerr:two\nout:three\n');
    t.ok(chunks.length >= 2 && chunks[chunks.length - 1]!.at - chunks[0]!.at >= 800, 'first chunk came before the sleep ended');
  });

  t.test('timeoutMs kills a command that runs too long', async (t) => {
    const r = await host.run(['sleep', '30'], { timeoutMs: 500 });
    t.equal(r.timedOut, true);
    t.equal(r.signal, 'SIGKILL');
    t.ok(r.durationMs < 10_000, `ended after ${r.durationMs} ms`);
  });

  t.test('timeoutMs kills the whole process group: a grandchild holding stdout does not keep the run open', async (t) => {
    const dir = host.workdir(t);
    const pidFile = path.join(dir, 'grandchild.pid');
    const started = Date.now();
    const r = await host.run(['sh', '-c', `sleep 300 & echo $! > ${pidFile}; echo started; wait`], { timeoutMs: 1000 });
    t.equal(r.timedOut, true, 'the run timed out');
    t.equal(r.stdout, 'started\n');
    t.ok(Date.now() - started < 10_000, `settled ${Date.now() - started} ms after start, not when sleep 300 ends`);
    const pid = readFileSync(pidFile, 'utf8').trim();
    const alive = await host.run(['sh', '-c', `kill -0 ${pid} 2>/dev/null && echo alive || echo gone`]);
    t.equal(alive.stdout, 'gone\n', 'the grandchild was killed with its group');
  });

  t.test('an AbortSignal kills the command and rejects with ABORTED', async (t) => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await t.rejects(host.run(['sleep', '30'], { signal: ac.signal }), { code: 'ABORTED' });
    await t.rejects(host.run(['true'], { signal: AbortSignal.abort() }), { code: 'ABORTED' }, 'already aborted');
  });

  t.test('buffered capture is bounded: past maxBuffer, a typed error and the command killed', async (t) => {
    await t.rejects(host.run(['sh', '-c', 'yes | head -c 3000000; sleep 30'], { maxBuffer: 1_000_000, timeoutMs: 60_000 }), {
      code: 'OUTPUT_LIMIT',
      stream: 'stdout',
      limitBytes: 1_000_000,
    });
  });

  t.test('200 MiB of output streams through spawn() with bounded memory', async (t) => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const proc = host.spawn(['sh', '-c', 'head -c 209715200 /dev/zero']);
    const hash = createHash('sha256');
    let bytes = 0;
    await pipeline(
      proc.stdout,
      new Writable({
        write(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          hash.update(chunk);
          peak = Math.max(peak, process.memoryUsage().rss);
          setImmediate(done); // a slow reader: the window must hold the agent back
        },
      }),
    );
    const end = await proc.wait();
    t.equal(end.exitCode, 0);
    t.equal(bytes, 200 * 1024 * 1024, 'every byte arrived');
    t.equal(hash.digest('hex'), createHash('sha256').update(Buffer.alloc(200 * 1024 * 1024)).digest('hex'));
    const grewMiB = (peak - before) / 1024 / 1024;
    t.comment(`RSS grew by ${grewMiB.toFixed(1)} MiB while 200 MiB streamed through`);
    t.ok(grewMiB < 64, `RSS stayed bounded (grew ${grewMiB.toFixed(1)} MiB, limit 64 MiB)`);
  });

  // Host → inside is the slow direction of virtio-serial under TCG (~1 MB/s measured): 8 MiB is enough to fill every window.
  t.test('stdin streams in with backpressure: 8 MiB through sha256sum', async (t) => {
    const data = randomBytes(8 * 1024 * 1024);
    const proc = host.spawn(['sha256sum'], { stdin: 'pipe' });
    const out: Buffer[] = [];
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    for (let off = 0; off < data.length; off += 1 << 20) {
      if (!proc.stdin!.write(data.subarray(off, off + (1 << 20)))) await new Promise((r) => proc.stdin!.once('drain', r));
    }
    proc.stdin!.end();
    const end = await proc.wait();
    t.equal(end.exitCode, 0);
    t.equal(Buffer.concat(out).toString().split(' ')[0], createHash('sha256').update(data).digest('hex'));
  });

  t.test('20 commands in parallel keep their own output', async (t) => {
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => host.run(['sh', '-c', `sleep 0.$((${i} % 5)); echo p${i}; echo e${i} >&2`])),
    );
    t.same(runs.map((r) => r.stdout), runs.map((_, i) => `p${i}\n`));
    t.same(runs.map((r) => r.stderr), runs.map((_, i) => `e${i}\n`));
  });

  t.test('a file written on the real host after boot is read inside', async (t) => {
    const dir = host.workdir(t);
    const file = path.join(dir, 'late.txt');
    const content = `written at ${Date.now()}\n`;
    writeFileSync(file, content);
    const r = await host.run(['cat', file]);
    t.equal(r.stdout, content, 'the emulated host sees the new file at once');
    writeFileSync(file, 'changed\n');
    t.equal((await host.run(['cat', file])).stdout, 'changed\n', 'and a change to it');
  });

  t.test('a file written inside a workdir reaches the real host', async (t) => {
    const file = path.join(host.workdir(t), 'from-inside.txt');
    const w = await host.run(['sh', '-c', `echo kept > ${file}`]);
    t.equal(w.exitCode, 0, w.stderr);
    t.equal(readFileSync(file, 'utf8'), 'kept\n', 'the file reached the real host');
  });

  t.test('connect(): a Unix socket inside, reached from outside; a missing one is a typed error', async (t) => {
    const sock = `/run/bulkhead-e2e-echo-${process.pid}.sock`;
    const server = host.spawn([
      process.execPath,
      '-e',
      `const s = require('net').createServer((c) => c.pipe(c)).listen(${JSON.stringify(sock)}, () => console.log('listening'));`,
    ]);
    t.teardown(() => server.kill('SIGKILL'));
    await new Promise((resolve) => server.stdout.once('data', resolve));
    const conn = host.connect(sock);
    const echoed: Buffer[] = [];
    conn.on('data', (d: Buffer) => echoed.push(d));
    const payload = randomBytes(3 * 1024 * 1024);
    conn.end(payload);
    await new Promise((resolve) => conn.once('end', resolve));
    t.ok(Buffer.concat(echoed).equals(payload), '3 MiB went through the socket and back');
    const missing = host.connect('/run/no-such.sock');
    const err = await new Promise<Error>((resolve) => missing.once('error', resolve));
    t.match(err, { code: 'HOST_UNAVAILABLE', reason: 'connect-failed', message: /no-such\.sock.*ENOENT/ });
  });

  t.test('the real root is shared read-only, writes stay inside', async (t) => {
    const kernel = await testKernel('host');
    const r = await host.run(['ls', kernel.dir]);
    t.match(r.stdout, /vmlinux/, 'the kernel cache is at the same path');
    const marker = `/tmp/bulkhead-e2e-${process.pid}`;
    const w = await host.run(['sh', '-c', `echo x > ${marker} && cat ${marker}`]);
    t.equal(w.stdout, 'x\n', 'writable (tmpfs overlay)');
    t.notOk(existsSync(marker), 'the write did not reach the real host');
  });
});
