// The zone commands of the built CLI, run as a user would from another shell: run (foreground,
// -i, -t, -e, -m, -d with its supervising process), exec, ps, logs, top, stop, rm, and their
// one-line errors. Until the real backend lands, Zone.create in these processes makes the
// ChildProcessZone TEST DOUBLE (fixtures/double-backend.ts, preloaded through NODE_OPTIONS); every
// other part — the CLI, the supervisor, attach through a zone's api.sock — is the real code.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isAlive } from '../../src/util/process';
import { tsNodeArgs } from '../e2e/fixtures/helpers';

const main = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-cli-zones-'));
t.teardown(() => fs.rmSync(runtime, { recursive: true, force: true }));

// The preload and the double, compiled once (a TypeScript loader in every CLI process would cost
// seconds per call).
const root = path.join(__dirname, '..', '..');
// Inside the tree (node_modules/.cache), so the compiled files find this package's dependencies.
const compiled = path.join(root, 'node_modules', '.cache', `bulkhead-cli-test-${process.pid}`);
t.teardown(() => fs.rmSync(compiled, { recursive: true, force: true }));
fs.writeFileSync(
  path.join(runtime, 'tsconfig.json'),
  JSON.stringify({ extends: path.join(root, 'tsconfig.json'), compilerOptions: { outDir: compiled, rootDir: root, sourceMap: false, declaration: false, typeRoots: [path.join(root, 'node_modules', '@types')] }, include: [], files: [path.join(__dirname, 'fixtures', 'double-backend.ts')] }),
);
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(runtime, 'tsconfig.json')], { encoding: 'utf8' });
if (tsc.status !== 0) throw new Error(`compiling the test double failed: ${tsc.stdout}${tsc.stderr}`);
fs.copyFileSync(path.join(__dirname, '..', 'support', 'pty-helper.py'), path.join(compiled, 'test', 'support', 'pty-helper.py'));
const preload = `--require=${path.join(compiled, 'test', 'cli', 'fixtures', 'double-backend.js')}`;
const env = { ...process.env, BULKHEAD_RUNTIME_DIR: runtime, BULKHEAD_TEST_DIST: path.join(root, 'dist', 'cjs'), NODE_OPTIONS: preload };

function cli(args: string[], opts: { input?: string; extraEnv?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000, input: opts.input ?? '', env: { ...env, ...opts.extraEnv } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('a zone another process owns, from another shell (through its api.sock)', async (t) => {
  const owner = spawn(process.execPath, [...tsNodeArgs(), path.join(__dirname, '..', 'server', 'fixtures', 'serve-double.ts'), 'own', 'webby'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BULKHEAD_RUNTIME_DIR: runtime },
  });
  t.teardown(() => owner.kill('SIGKILL'));
  const id = await new Promise<string>((resolve, reject) => {
    owner.stdout.setEncoding('utf8').on('data', (d: string) => {
      const m = /ZONE=(\w+)/.exec(d);
      if (m) resolve(m[1]!);
    });
    owner.once('exit', (code) => reject(new Error(`owner exited ${code}`)));
  });

  const ps = cli(['ps']);
  t.equal(ps.status, 0);
  t.match(ps.stdout, /^ZONE ID\s+NAME\s+IMAGE\s+STATE/);
  t.match(ps.stdout, new RegExp(`${id}\\s+webby\\s+busybox\\s+running`));
  t.match(JSON.parse(cli(['ps', '--json']).stdout), [{ id, name: 'webby', state: 'running' }]);

  t.match(cli(['exec', 'webby', 'echo', 'hi', '--not-a-flag-of-ours']), { status: 0, stdout: 'hi --not-a-flag-of-ours\n' }, 'the command keeps its own flags');
  t.equal(cli(['exec', id.slice(0, 6), 'sh', '-c', 'exit 5']).status, 5, 'an id prefix; the exit code');
  t.equal(cli(['exec', 'webby', 'sh', '-c', 'kill -KILL $$']).status, 137, '128 + SIGKILL');
  t.match(cli(['exec', 'webby', 'sh', '-c', 'echo out; echo err >&2']), { stdout: 'out\n', stderr: 'err\n' });
  t.match(cli(['exec', '-i', 'webby', 'cat'], { input: 'piped in\n' }), { status: 0, stdout: 'piped in\n' }, '-i wires stdin');
  t.match(cli(['exec', 'webby', 'cat'], { input: 'ignored\n' }), { status: 0, stdout: '' }, 'without -i stdin is closed');
  t.match(cli(['exec', '-e', 'A=1', '-w', '/tmp', '-u', 'nobody', 'webby', 'sh', '-c', 'echo $A; pwd; id -u']), { stdout: '1\n/tmp\n65534\n' });
  t.match(cli(['exec', '-t', 'webby', 'sh', '-c', '[ -t 0 ] && echo TTY; stty size']), { status: 0, stdout: /TTY\r?\n24 80/ }, '-t: a terminal, 80x24 when ours is none');

  const logs = cli(['logs', 'webby']);
  t.match(logs, { status: 0, stdout: /main says hi/ });
  t.match(logs.stdout, /\[zone\] booting/, 'non-console entries carry their source');
  t.match(cli(['top', 'webby']), { status: 0, stdout: /memory [\d.]+ of 256\.0 MiB used[\s\S]*PID\s+USER\s+RSS/ });

  // logs -f ends when the zone is destroyed.
  const follower = spawn(process.execPath, [main, 'logs', '-f', 'webby'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const followed = new Promise<number | null>((resolve) => follower.once('exit', resolve));
  t.match(cli(['rm', 'webby']), { status: 1, stderr: /^bulkhead: cannot remove zone webby \(stop it first, or use rm -f\) while running/ }, 'rm of a running zone is refused');
  t.match(cli(['stop', 'webby']), { status: 0, stdout: 'webby\n' });
  t.match(JSON.parse(cli(['ps', '-a', '--json']).stdout), [{ id, state: 'exited' }], 'ps -a shows the exited zone');
  t.equal(cli(['ps', '--json']).stdout.trim(), '[]', 'plain ps does not');
  t.match(cli(['rm', 'webby']), { status: 0, stdout: 'webby\n' });
  t.equal(await followed, 0, 'logs -f ended with the zone');
  await new Promise<void>((resolve) => (owner.exitCode !== null ? resolve() : owner.once('exit', () => resolve())));
  t.equal(cli(['ps', '-a', '--json']).stdout.trim(), '[]', 'gone from ps');
  t.match(cli(['exec', 'webby', 'true']), { status: 1, stderr: /^bulkhead: no zone named or numbered "webby" on this host \(bulkhead ps lists them\) \[ZONE_NOT_FOUND\]\n$/ });
});

t.test('run in the foreground: output, exit codes, env, terminal, one-line errors', async (t) => {
  t.match(cli(['run', '--rm', 'busybox', '--', 'echo', 'hello']), { status: 0, stdout: 'hello\n' });
  t.equal(cli(['run', 'busybox', '--', 'sh', '-c', 'exit 3']).status, 3);
  t.equal(cli(['run', 'busybox', 'sh', '-c', 'kill -TERM $$']).status, 143, '128 + SIGTERM; CMD without --');
  t.match(cli(['run', '-e', 'K=V', '--name', 'named', 'busybox', '--', 'sh', '-c', 'echo $K']), { stdout: 'V\n' });
  t.match(cli(['run', '-i', 'busybox', '--', 'sha256sum'], { input: 'abc' }), { stdout: /^ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad / });
  t.match(cli(['run', '-t', 'busybox', '--', 'sh', '-c', '[ -t 1 ] && echo TTY']), { stdout: /TTY/ });
  const big = cli(['run', '-m', '100000g', 'busybox', '--', 'true']);
  t.equal(big.status, 2);
  t.match(big.stderr, /^bulkhead: invalid memoryMiB: 102400000; allowed: an integer from 32 to \d+ \(this host's memory in MiB\) \[INVALID_CONFIG\]\n$/, 'memory beyond the host: one line naming it');
  t.match(cli(['run', '-m', '12x', 'busybox']), { status: 2, stderr: /^bulkhead: invalid --memory: "12x"; allowed: a size in whole MiB/ });
  const unknown = cli(['run', 'no-such-image', '--', 'true']);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /^bulkhead: no image "no-such-image".*\[ZONE_START_FAILED\]\n$/, 'an unknown image: one line');
  t.match(cli(['run', '-it', 'busybox']), { status: 2, stderr: /invalid CMD/ }, '-it needs a command');
  t.equal(cli(['ps', '-a', '--json']).stdout.trim(), '[]', 'foreground zones are gone afterwards');
});

t.test('run -d: a supervising process owns the zone until rm', async (t) => {
  const started = cli(['run', '-d', '--name', 'bg', 'busybox', '--', 'sh', '-c', 'echo in the background; sleep 600']);
  t.equal(started.status, 0, started.stderr);
  const id = started.stdout.trim();
  t.match(id, /^[0-9a-f]{12}$/, 'prints the zone id');
  const [record] = JSON.parse(fs.readFileSync(path.join(runtime, 'zones', id, 'zone.json'), 'utf8') ? `[${fs.readFileSync(path.join(runtime, 'zones', id, 'zone.json'), 'utf8')}]` : '[]') as { ownerPid: number }[];
  t.ok(record && isAlive(record.ownerPid), 'its owner (the supervisor) is alive after run returned');
  let logs = '';
  for (let i = 0; i < 50 && !logs.includes('in the background'); i++) {
    logs = cli(['logs', 'bg']).stdout;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(logs, /in the background/, 'logs of the detached zone');
  t.match(cli(['exec', 'bg', 'echo', 'reachable']), { stdout: 'reachable\n' });
  t.match(cli(['rm', '-f', 'bg']), { status: 0 });
  for (let i = 0; i < 50 && isAlive(record!.ownerPid); i++) await new Promise((r) => setTimeout(r, 100));
  t.notOk(isAlive(record!.ownerPid), 'the supervisor exited with its zone');

  const rm = cli(['run', '-d', '--rm', 'busybox', '--', 'true']);
  t.equal(rm.status, 0);
  const rmId = rm.stdout.trim();
  for (let i = 0; i < 50 && fs.existsSync(path.join(runtime, 'zones', rmId)); i++) await new Promise((r) => setTimeout(r, 100));
  t.notOk(fs.existsSync(path.join(runtime, 'zones', rmId)), '--rm: removed when its command exited');
  t.match(cli(['run', '-d', 'no-such-image']), { status: 1, stderr: /^bulkhead: no image "no-such-image"/ }, "the supervisor's failure is reported by run -d");
  t.match(cli(['run', '-d', '-i', 'busybox', '--', 'cat']), { status: 2, stderr: /cannot be combined with -i or -t/ });
});

t.test('through BULKHEAD_SERVER (a bulkhead serve)', async (t) => {
  const socket = path.join(runtime, 'serve.sock');
  const server = spawn(process.execPath, [...tsNodeArgs(), path.join(__dirname, '..', 'server', 'fixtures', 'serve-double.ts'), 'serve', socket], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BULKHEAD_RUNTIME_DIR: path.join(runtime, 'server-side') },
  });
  t.teardown(() => server.kill('SIGKILL'));
  await new Promise<void>((resolve) => server.stdout.on('data', (d: Buffer) => d.toString().includes('READY') && resolve()));
  const viaServer = { extraEnv: { BULKHEAD_SERVER: socket } };
  t.match(cli(['run', '--rm', 'busybox', '--', 'echo', 'served'], viaServer), { status: 0, stdout: 'served\n' });
  const d = cli(['run', '-d', '--name', 'srv', 'busybox', '--', 'sleep', '600'], viaServer);
  t.equal(d.status, 0, d.stderr);
  t.match(cli(['ps'], viaServer).stdout, /srv\s+busybox\s+running/);
  t.match(cli(['exec', 'srv', 'echo', 'x'], viaServer), { stdout: 'x\n' });
  t.match(cli(['rm', '-f', 'srv'], viaServer), { status: 0 });
  t.equal(cli(['ps', '-a', '--json'], viaServer).stdout.trim(), '[]');
  t.match(cli(['ps'], { extraEnv: { BULKHEAD_SERVER: path.join(runtime, 'nothing.sock') } }), { status: 1, stderr: /^bulkhead: cannot check the server: .*no server socket there.*\[SERVER_UNAVAILABLE\]\n$/ });
});
