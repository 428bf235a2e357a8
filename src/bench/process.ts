/**
 * Child processes for the harness: run a command to completion with a timeout and an AbortSignal, and
 * find commands on PATH. Children get their own process group so a terminal's Ctrl-C reaches only the
 * harness, which then stops and cleans up every child itself, in order.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulkheadError } from '../errors';

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  readonly cwd?: string;
}

/** Runs a command and collects its output. Never throws for a non-zero exit: see `runChecked`. */
export function runCommand(command: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(abortError(command));
      return;
    }
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    let stdout = '';
    let stderr = '';
    let aborted = false;
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const onAbort = (): void => {
      aborted = true;
      killGroup();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            killGroup();
          }, options.timeoutMs)
        : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(new BulkheadError('BENCH_FAILED', `cannot run ${command}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (aborted) reject(abortError(command));
      else if (timedOut) reject(new BulkheadError('BENCH_FAILED', `${command} ${args.join(' ')} did not finish within ${options.timeoutMs} ms; stderr: ${stderr.trim().slice(-500)}`));
      else resolve({ code, signal, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a child that exits without reading its input is not an error here
      child.stdin.end(options.input);
    }
  });
}

/** Runs a command and throws (with its stderr) unless it exits 0. */
export async function runChecked(command: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    throw new BulkheadError('BENCH_FAILED', `${command} ${args.join(' ')} ${how}: ${result.stderr.trim().slice(-1000)}`);
  }
  return result;
}

export class BenchAbortedError extends BulkheadError {
  constructor(what: string) {
    super('BENCH_FAILED', `benchmark aborted while running ${what}`);
  }
}

function abortError(command: string): BenchAbortedError {
  return new BenchAbortedError(command);
}

/** The absolute path of `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** First line of `command --version`, or undefined if it cannot run. */
export async function versionOf(command: string, args: readonly string[] = ['--version']): Promise<string | undefined> {
  try {
    const r = await runCommand(command, args, { timeoutMs: 10_000 });
    const line = (r.stdout || r.stderr).split('\n')[0]?.trim();
    return r.code === 0 && line ? line : undefined;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Live (non-zombie) processes whose command line contains `text`: how we find what our runs started. */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(text)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** SIGKILLs every process mentioning `text` and waits (up to 2 s) until they are gone. */
export async function killProcessesMentioning(text: string): Promise<void> {
  for (const pid of processesMentioning(text)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (let i = 0; i < 40 && processesMentioning(text).length > 0; i++) await sleep(50);
}
