/**
 * Child processes, the one helper for the whole library: run a command to completion with a timeout
 * and an AbortSignal, find commands on PATH, and find or kill processes. Children get their own
 * process group, so a terminal's Ctrl-C reaches only us, and a timeout or abort kills the whole group.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AbortedError, BulkheadError } from '../errors';

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
      reject(new CommandFailedError(command, args, `cannot run ${command}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (aborted) reject(abortError(command));
      else if (timedOut) reject(new CommandFailedError(command, args, `${command} ${args.join(' ')} did not finish within ${options.timeoutMs} ms; stderr: ${stderr.trim().slice(-500)}`));
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
    throw new CommandFailedError(command, args, `${command} ${args.join(' ')} ${how}: ${result.stderr.trim().slice(-1000)}`);
  }
  return result;
}

/** A command that could not run, ran past its deadline, or (from runChecked) did not exit 0. */
export class CommandFailedError extends BulkheadError {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    message: string,
    options?: { cause?: unknown },
  ) {
    super('COMMAND_FAILED', message, options);
  }
}

function abortError(command: string): AbortedError {
  return new AbortedError(`running ${command}`);
}

/** The absolute path of the executable `name` on `searchPath` (default $PATH), or undefined. */
export function which(name: string, searchPath: string = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
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

/** True while `pid` names a process that has not exited (a zombie counts as exited). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];

/**
 * The command line that starts `command` so the kernel sends it `deathSignal` when this process
 * dies, even by SIGKILL (util-linux `setpriv --pdeathsig`). Without setpriv the command runs as
 * is, and `diesWithParent` is false.
 */
export function diesWithParent(
  command: string,
  args: readonly string[],
  deathSignal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL',
): { command: string; args: string[]; diesWithParent: boolean } {
  const setpriv = SETPRIV_CANDIDATES.find((p) => fs.existsSync(p));
  if (!setpriv) return { command, args: [...args], diesWithParent: false };
  return { command: setpriv, args: ['--pdeathsig', deathSignal, '--', command, ...args], diesWithParent: true };
}
