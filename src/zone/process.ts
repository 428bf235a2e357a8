/**
 * ZoneProcess over the agent: the agent's process starts asynchronously, but spawn() returns at
 * once, so the streams here are PassThroughs piped to the agent's once it runs (pipe() keeps the
 * backpressure). Deadlines and aborts kill the process; a zone that dies first makes wait() reject
 * with the zone's ZoneClosedError.
 */
import { PassThrough } from 'node:stream';
import { AbortedError } from '../errors';
import { readersCaughtUp } from '../util/streams';
import type { AgentProcess } from './agent';
import type { ProcessEnd, ZoneProcess } from './types';

export interface ProcessControl {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The error to fail with when the zone is gone (the agent's own error is replaced by it). */
  zoneGone: () => Error | undefined;
}

export function wrapAgentProcess(start: Promise<AgentProcess>, control: ProcessControl): ZoneProcess {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const started = Date.now();
  let agentProc: AgentProcess | undefined;
  let timedOut = false;
  let aborted = false;
  let pendingSignal: NodeJS.Signals | number | undefined;
  let pendingResize: [number, number] | undefined;

  const kill = (signal: NodeJS.Signals | number = 'SIGTERM') => {
    if (agentProc) agentProc.kill(signal);
    else pendingSignal = signal;
  };
  const timer = control.timeoutMs !== undefined ? setTimeout(() => ((timedOut = true), kill('SIGKILL')), control.timeoutMs) : undefined;
  const onAbort = () => {
    aborted = true;
    kill('SIGKILL');
  };
  if (control.signal?.aborted) onAbort();
  else control.signal?.addEventListener('abort', onAbort, { once: true });

  const pid = start.then((p) => {
    agentProc = p;
    if (p.stdin) {
      stdin.pipe(p.stdin);
      p.stdin.on('error', () => undefined);
    } else stdin.resume(); // no stdin pipe: what is written goes nowhere, like /dev/null
    p.stdout.on('error', () => undefined).pipe(stdout);
    p.stderr.on('error', () => undefined).pipe(stderr);
    if (pendingSignal !== undefined) p.kill(pendingSignal);
    if (pendingResize) p.resize(pendingResize[1], pendingResize[0]);
    return p.pid;
  });
  pid.catch(() => undefined);

  const ended: Promise<ProcessEnd> = pid
    .then(() => agentProc!.wait())
    .then(async (status) => (await readersCaughtUp([stdout, stderr]), status)) // the piped bytes reach a fresh listener first
    .then(
      (status): ProcessEnd => {
        if (aborted) throw new AbortedError('running a command in the zone');
        return { exitCode: status.exitCode, signal: status.signal, timedOut, durationMs: Date.now() - started };
      },
      (err: Error) => {
        throw aborted ? new AbortedError('running a command in the zone', { cause: err }) : (control.zoneGone() ?? err);
      },
    )
    .finally(() => {
      clearTimeout(timer);
      control.signal?.removeEventListener('abort', onAbort);
      stdin.destroy();
      if (!agentProc) {
        stdout.end();
        stderr.end();
      }
    });
  ended.catch(() => {
    // The streams end too, so readers are not left waiting (no 'error' event: wait() carries it).
    stdout.end();
    stderr.end();
  });

  return {
    stdin,
    stdout,
    stderr,
    pid,
    kill,
    resize(cols: number, rows: number) {
      if (agentProc) agentProc.resize(rows, cols);
      else pendingResize = [cols, rows];
    },
    wait: () => ended,
  };
}
