/**
 * Zones on a machine whose /dev/kvm is PVM or missing: they run inside the emulated host (QEMU TCG
 * with nested SVM, src/host/emulated), where /dev/kvm has hardware semantics.
 *
 * One shared emulated host per machine (a keeper in the runtime dir; it stops itself after
 * IDLE_TIMEOUT_MS without clients), and per process one `bulkhead serve` inside it, started over
 * the keeper's channel and reached through host.connect(). That serve dies with this process's
 * connection, so its zones can never outlive their owner. Images and kernels are prepared out
 * here (native speed) into the cache, which the emulated host sees live; the serve inside only
 * boots VMs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureKeeper, SharedEmulatedHost, sharedHostDir, sharedHostOptions, SHARED_HOST_CPUS, SHARED_HOST_MEMORY_MIB, type HostProcess } from '../host/emulated';
import { resolveImage } from '../image';
import { buildKernel } from '../kernel';
import { connect, type ZoneClient } from '../server/client';
import { cacheDir, cacheRoot, writeFileAtomic } from '../util/cache';
import { agentBinary } from './agent';
import { packagePath } from '../util/package-root';
import { ZoneStartError } from './errors';
import type { RemoteZone } from './remote';
import { validateZoneSpec, type ZoneSpec } from './spec';
import type { CreateOptions } from './zone';

/** The shared host stops after this long with no process connected. */
export const IDLE_TIMEOUT_MS = 5 * 60_000;
const SERVE_START_TIMEOUT_MS = 120_000;

interface InnerServer {
  host: SharedEmulatedHost;
  serve: HostProcess;
  client: ZoneClient;
  socket: string;
  /** The end of what the server wrote to stderr (why it ended, when it has). */
  stderrTail(): string;
}

let inner: Promise<InnerServer> | undefined;
/** What `inner` resolved to, once it has. */
let current: InnerServer | undefined;

export async function createEmulatedZone(spec: ZoneSpec, opts: CreateOptions): Promise<RemoteZone> {
  // Field errors are caught here, against the emulated host's size, before anything boots.
  const validated = validateZoneSpec(spec, { hostMemoryMiB: SHARED_HOST_MEMORY_MIB - 512, hostCpus: SHARED_HOST_CPUS });
  const progress = opts.onProgress ?? (() => undefined);
  // The emulated host and its server start while the image and kernel are prepared out here.
  const serverReady = innerServer(progress);
  serverReady.catch(() => undefined);
  const artifact = await resolveImage(validated.image, { signal: spec.signal, onProgress: (e) => progress(`image: ${e.message}`) });
  const kernel = validated.kernel ?? (await buildKernel({ config: 'zone', signal: spec.signal, progress: { onLine: progress } })).vmlinux;
  let server = await serverReady;
  if (lost(server)) {
    // The last server ended, or its host did (its zones with it): new zones get a new one, not its dead socket.
    progress(`emulated host: the zone server ${ended(server) ? 'ended' : 'lost its host'} (last output: ${server.stderrTail().trim() || 'none'}); starting another`);
    forget(server);
    server = await innerServer(progress);
  }
  // Resolved out here; inside, the store (shared live) has it by digest, and resolving again under TCG is slow.
  const inside: ZoneSpec = { ...spec, imageDigest: artifact.digest, kernel };
  try {
    return await server.client.create(inside);
  } catch (err) {
    if (!lost(server)) throw err;
    forget(server);
    const why = lossReason(server, err);
    if (spec.signal?.aborted) throw new ZoneStartError('machine', why, undefined, { cause: err });
    // Nested SVM under TCG sometimes takes the emulated host's own kernel down (an oops in L1, not
    // in the zone). No caller has seen this zone yet, so it starts once more on a fresh host.
    progress(`emulated host: lost while the zone started (${why}); starting the zone once more on a fresh host`);
    const fresh = await innerServer(progress);
    try {
      return await fresh.client.create(inside);
    } catch (again) {
      if (!lost(fresh)) throw again;
      forget(fresh);
      throw new ZoneStartError('machine', `the emulated host was lost twice while the zone started: ${why}; then ${lossReason(fresh, again)}`, undefined, { cause: again });
    }
  }
}

/** The server inside has ended, or the emulated host under it has gone. */
function lost(server: InnerServer): boolean {
  return ended(server) || !server.host.running;
}

function lossReason(server: InnerServer, err: unknown): string {
  const tail = server.stderrTail().trim();
  return `the zone server inside the emulated host ended: ${(err as Error).message}${tail ? `; its last output: ${tail}` : ''}`;
}

function ended(server: InnerServer): boolean {
  return server.serve.stdout.readableEnded;
}

/** Drops an ended server, so the next zone starts a fresh one. */
function forget(server: InnerServer): void {
  if (current === server) {
    inner = undefined;
    current = undefined;
  }
  void server.host.stop();
}

/**
 * The agent, built out here and copied into the cache under names keyed by content:
 * the emulated host sees the cache live, while files built in the package after it booted may
 * not be visible through its cached view of the root.
 */
function stageZoneAssets(): { agent: string } {
  const dir = cacheDir('zone-assets');
  const stage = (file: string, name: string) => {
    const bytes = readFileSync(file);
    const target = path.join(dir, `${name}-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`);
    if (!existsSync(target)) {
      writeFileAtomic(target, bytes);
      chmodSync(target, 0o755);
    }
    return target;
  };
  return { agent: stage(agentBinary(), 'bulkhead-agent') };
}

/** This process's `bulkhead serve` inside the shared emulated host, started on first use. */
function innerServer(progress: (line: string) => void): Promise<InnerServer> {
  inner ??= startInnerServer(progress).catch((err: unknown) => {
    inner = undefined;
    throw err;
  });
  return inner;
}

async function startInnerServer(progress: (line: string) => void): Promise<InnerServer> {
  progress('emulated host: starting or reusing the shared one (QEMU TCG with nested SVM: expect slow starts)');
  await ensureKeeper({ dir: sharedHostDir(), idleTimeoutMs: IDLE_TIMEOUT_MS, host: sharedHostOptions() });
  // The connection holds this process only while zone traffic flows (see ControlChannel idleUnref).
  const host = await SharedEmulatedHost.connect(sharedHostDir(), { idleUnref: true });
  const socket = `/run/bulkhead-serve-${process.pid}-${randomBytes(4).toString('hex')}.sock`;
  const assets = stageZoneAssets();
  const serve = host.spawn([process.execPath, packagePath('dist', 'cjs', 'cli', 'main.js'), 'serve', '--socket', socket], {
    cwd: '/',
    env: { BULKHEAD_RUNTIME_DIR: '/run/bulkhead', BULKHEAD_CACHE_DIR: cacheRoot(), BULKHEAD_AGENT_BINARY: assets.agent },
    holdProcess: false,
  });
  let log = '';
  serve.stderr.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
    for (const line of d.toString().split('\n')) if (line.trim()) progress(`emulated host: ${line.trim()}`);
  });
  serve.stdout.resume();
  const deadline = Date.now() + SERVE_START_TIMEOUT_MS;
  let ended = false;
  let status = '';
  void serve.wait().then(
    (end) => {
      ended = true;
      status = end.signal ? `killed by ${end.signal}` : `exit status ${end.exitCode}`;
    },
    (err: Error) => {
      ended = true;
      status = `lost: ${err.message}`;
    },
  );
  // Zones that lose this server say why it went, as far as is known by then.
  const lastWords = () => {
    const tail = log.trim().split('\n').slice(-8).join(' | ');
    if (!status && !tail) return undefined;
    return `bulkhead serve in the emulated host: ${status ? `ended, ${status}` : 'no exit reported yet'}${tail ? `; its last output: ${tail}` : ''}`;
  };
  for (;;) {
    try {
      const client = await connect(
        { connect: () => host.connect(socket), describe: `bulkhead serve in the emulated host (${socket})`, lastWords },
        { backend: 'emulated-host' },
      );
      current = { host, serve, client, socket, stderrTail: () => log };
      return current;
    } catch (err) {
      if (ended || Date.now() > deadline) {
        serve.kill('SIGKILL');
        await host.stop();
        throw new ZoneStartError('machine', `bulkhead serve did not start inside the emulated host: ${(err as Error).message}\n${log}`, undefined, { cause: err });
      }
      await sleep(200);
    }
  }
}
