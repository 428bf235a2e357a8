/**
 * The agent binary for a zone's initramfs: `agentBinary()` gives the path of the static
 * native/agent/out/bulkhead-agent, building it with make the first time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';

/** native/agent in this package (src/zone/agent → ../../../native/agent, the same from dist/cjs). */
export function agentSourceDir(): string {
  const fromHere = (up: number) => path.resolve(__dirname, ...Array<string>(up).fill('..'), 'native', 'agent');
  const dir = [fromHere(3), fromHere(4)].find((d) => existsSync(path.join(d, 'Makefile')));
  if (!dir) throw new BulkheadError('COMMAND_FAILED', `native/agent not found above ${__dirname}`);
  return dir;
}

function outOfDate(target: string, dir: string): boolean {
  if (!existsSync(target)) return true;
  const t = statSync(target).mtimeMs;
  const sources = ['main.c', 'loop.c', 'session.c', 'proto.c', 'exec.c', 'files.c', 'metrics.c', 'users.c', 'boot.c', 'power.c', 'agent.h', 'proto.h'];
  return sources.some((f) => existsSync(path.join(dir, f)) && statSync(path.join(dir, f)).mtimeMs > t);
}

/**
 * Builds (if needed) and returns a native/agent/out artifact: 'bulkhead-agent' (static, for
 * zones), 'bulkhead-agent-asan' (test mode on this host), or 'vsock-bridge'.
 */
export function agentArtifact(name: 'bulkhead-agent' | 'bulkhead-agent-asan' | 'vsock-bridge' = 'bulkhead-agent'): string {
  const dir = agentSourceDir();
  const target = path.join(dir, 'out', name);
  if (!outOfDate(target, dir)) return target;
  const make = spawnSync('make', ['-s', '-C', dir, name === 'bulkhead-agent-asan' ? 'asan' : 'all'], { encoding: 'utf8' });
  if (make.error || make.status !== 0 || !existsSync(target)) {
    const why = make.error ? make.error.message : (make.stderr || make.stdout).trim().slice(-1500);
    throw new BulkheadError(
      'COMMAND_FAILED',
      `building the zone agent (make -C ${dir}) failed: ${why}\n` +
        'it needs make and a C compiler (apt-get install build-essential musl-tools; clang for the ASan build)',
    );
  }
  return target;
}

/** The static agent binary, PID 1 of a zone's initramfs ($BULKHEAD_AGENT_BINARY when set). */
export function agentBinary(): string {
  if (process.env.BULKHEAD_AGENT_BINARY) return process.env.BULKHEAD_AGENT_BINARY;
  return agentArtifact('bulkhead-agent');
}
