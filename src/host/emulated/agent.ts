/**
 * The control agent that runs inside the emulated host, under the host's own node, after the init
 * has chrooted into the shared root. It reads requests from the virtio-serial port and runs them.
 *
 * `agentMain` is shipped as source text (`agentSource()`), written into the initramfs, so the
 * agent never depends on the project having been compiled: the function must stay self-contained
 * (node built-ins via require, no references to anything outside its body).
 */

/* eslint-disable @typescript-eslint/no-require-imports */
function agentMain(): void {
  const fs = require('node:fs') as typeof import('node:fs');
  const cp = require('node:child_process') as typeof import('node:child_process');
  const os = require('node:os') as typeof import('node:os');
  const net = require('node:net') as typeof import('node:net');
  const { StringDecoder } = require('node:string_decoder') as typeof import('node:string_decoder');

  const device = process.argv[2];
  if (!device) {
    process.stderr.write('bulkhead-agent: usage: agent.js <control port device>\n');
    process.exit(2);
  }
  const fd = fs.openSync(device, 'r+');

  // Writes go through one queue so messages never interleave; fs.write runs on the thread pool
  // while another pool thread sits in the blocking read below.
  const queue: Buffer[] = [];
  let writing = false;
  function send(msg: Record<string, unknown>): void {
    queue.push(Buffer.from(JSON.stringify(msg) + '\n'));
    if (!writing) flush();
  }
  function flush(): void {
    const buf = queue.shift();
    if (!buf) {
      writing = false;
      return;
    }
    writing = true;
    writeAll(buf, 0);
  }
  function writeAll(buf: Buffer, off: number): void {
    fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
      if (err) {
        // The outside end is not connected (yet): keep the message and retry shortly.
        setTimeout(() => writeAll(buf, off), 100);
        return;
      }
      if (off + n < buf.length) writeAll(buf, off + n);
      else flush();
    });
  }

  function ready(): void {
    send({ t: 'ready', protocol: 2, release: os.release(), nodeVersion: process.version, uptime: os.uptime() });
  }

  const OUTPUT_WINDOW = 1024 * 1024;
  interface Run {
    /** What output is read from (a command's stdout and stderr, or a socket), paused by the window. */
    outputs: import('node:stream').Readable[];
    input: import('node:stream').Writable | null;
    signal: (signal: string) => void;
    unacked: number;
    paused: boolean;
    killed: boolean;
    reported: boolean;
  }
  const runs = new Map<number, Run>();

  function report(id: number, run: Run, code: number | null, signal: string | null): void {
    if (run.reported) return;
    run.reported = true;
    runs.delete(id);
    send({ t: 'exit', id, code, signal });
  }

  function run(msg: { id: number; argv: string[]; cwd: string; env: Record<string, string>; stdin: boolean }): void {
    const [file, ...args] = msg.argv;
    let child: import('node:child_process').ChildProcess;
    try {
      // detached: its own process group, so a signal or a deadline reaches everything it started.
      child = cp.spawn(file ?? '', args, {
        cwd: msg.cwd,
        env: msg.env,
        stdio: [msg.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (err) {
      failed(msg.id, err);
      return;
    }
    const r: Run = {
      outputs: [child.stdout!, child.stderr!],
      input: child.stdin,
      signal: (signal) => {
        if (child.pid !== undefined) process.kill(-child.pid, signal as NodeJS.Signals);
      },
      unacked: 0,
      paused: false,
      killed: false,
      reported: false,
    };
    runs.set(msg.id, r);
    let spawnError: unknown;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.stdout?.on('data', forward(msg.id, r, 1));
    child.stderr?.on('data', forward(msg.id, r, 2));
    child.stdin?.on('error', () => undefined); // the command may exit without reading it all
    child.on('exit', (code, signal) => {
      // Killed on request (deadline, abort): whatever still holds its pipes must not keep the run open.
      if (r.killed) {
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          report(msg.id, r, code, signal);
        }, 500);
      }
    });
    child.on('close', (code, signal) => {
      if (spawnError) {
        runs.delete(msg.id);
        r.reported = true;
        failed(msg.id, spawnError);
      } else report(msg.id, r, code, signal);
    });
  }

  /** Sends output of `id` and stops reading it while more than the window is unacknowledged. */
  function forward(id: number, r: Run, fd: 1 | 2): (d: Buffer) => void {
    return (d) => {
      send({ t: 'out', id, fd, data: d.toString('base64') });
      r.unacked += d.length;
      if (r.unacked > OUTPUT_WINDOW && !r.paused) {
        r.paused = true;
        for (const o of r.outputs) o.pause();
      }
    };
  }

  /** A connection to a Unix socket inside, relayed like a command: output is what it sends, stdin what it gets. */
  function connect(msg: { id: number; path: string }): void {
    const socket = net.createConnection(msg.path);
    const r: Run = { outputs: [socket], input: socket, signal: () => socket.destroy(), unacked: 0, paused: false, killed: false, reported: false };
    runs.set(msg.id, r);
    socket.on('data', forward(msg.id, r, 1));
    let failure: Error | undefined;
    socket.on('error', (err) => (failure = err));
    socket.on('close', () => {
      if (failure && !r.reported) send({ t: 'out', id: msg.id, fd: 2, data: Buffer.from(`bulkhead-agent: ${failure.message}\n`).toString('base64') });
      report(msg.id, r, failure ? 1 : 0, null);
    });
  }

  function onAck(id: number, bytes: number): void {
    const r = runs.get(id);
    if (!r) return;
    r.unacked = Math.max(0, r.unacked - bytes);
    if (r.paused && r.unacked <= OUTPUT_WINDOW / 2) {
      r.paused = false;
      for (const o of r.outputs) o.resume();
    }
  }

  function onStdin(id: number, data: string | undefined): void {
    const r = runs.get(id);
    const stdin = r?.input;
    if (!r || !stdin || stdin.destroyed) return;
    if (data === undefined) {
      stdin.end();
      return;
    }
    const bytes = Buffer.from(data, 'base64');
    stdin.write(bytes, () => send({ t: 'stdin-ack', id, bytes: bytes.length }));
  }

  function signalGroup(id: number, signal: string): void {
    const r = runs.get(id);
    if (!r) return;
    if (signal === 'SIGKILL') r.killed = true;
    try {
      r.signal(signal);
    } catch {
      // the group is gone already
    }
  }

  // Like a shell: 127 when the command does not exist, 126 when it cannot be executed.
  function failed(id: number, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    const message = `bulkhead-agent: ${e.message ?? String(err)}\n`;
    send({ t: 'out', id, fd: 2, data: Buffer.from(message).toString('base64') });
    send({ t: 'exit', id, code: e.code === 'ENOENT' ? 127 : 126, signal: null });
  }

  function handle(line: string): void {
    let msg: { t: string; id: number; signal: string; bytes: number; data?: string } & Parameters<typeof run>[0];
    try {
      msg = JSON.parse(line);
    } catch {
      send({ t: 'log', message: `unparsable request: ${line.slice(0, 200)}` });
      return;
    }
    if (msg.t === 'hello') ready();
    else if (msg.t === 'run') run(msg);
    else if (msg.t === 'connect') connect(msg as unknown as { id: number; path: string });
    else if (msg.t === 'ack') onAck(msg.id, msg.bytes);
    else if (msg.t === 'stdin') onStdin(msg.id, msg.data ?? '');
    else if (msg.t === 'stdin-end') onStdin(msg.id, undefined);
    else if (msg.t === 'signal') signalGroup(msg.id, msg.signal);
    else if (msg.t === 'shutdown') {
      for (const id of runs.keys()) signalGroup(id, 'SIGKILL');
      // Let the queue drain, then leave: the init powers the machine off when we exit.
      const leave = () => (writing || queue.length > 0 ? setTimeout(leave, 20) : process.exit(0));
      leave();
    } else send({ t: 'log', message: `unknown request type ${JSON.stringify(msg.t)}` });
  }

  // The read loop: blocking reads on the thread pool. A read of 0 bytes means the outside end is
  // not connected; poll until it is.
  const buf = Buffer.alloc(64 * 1024);
  const decoder = new StringDecoder('utf8'); // a read may end inside a multi-byte character
  let pending = '';
  function readLoop(): void {
    fs.read(fd, buf, 0, buf.length, null, (err, n) => {
      if (err || n === 0) {
        setTimeout(readLoop, err ? 100 : 20);
        return;
      }
      pending += decoder.write(buf.subarray(0, n));
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line) handle(line);
      }
      readLoop();
    });
  }
  ready();
  readLoop();
}

/** The agent as a standalone script. */
export function agentSource(): string {
  return `'use strict';\n// bulkhead emulated-host agent (generated from src/host/emulated/agent.ts)\n(${agentMain.toString()})();\n`;
}
