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
  const { StringDecoder } = require('node:string_decoder') as typeof import('node:string_decoder');

  const device = process.argv[2];
  if (!device) {
    process.stderr.write('bulkhead-agent: usage: agent.js <control port device>\n');
    process.exit(2);
  }
  const fd = fs.openSync(device, 'r+');
  const children = new Map<number, import('node:child_process').ChildProcess>();

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
    send({ t: 'ready', protocol: 1, release: os.release(), nodeVersion: process.version, uptime: os.uptime() });
  }

  function run(msg: { id: number; argv: string[]; cwd: string; env: Record<string, string>; stdin?: string }): void {
    const [file, ...args] = msg.argv;
    let child: import('node:child_process').ChildProcess;
    try {
      child = cp.spawn(file ?? '', args, {
        cwd: msg.cwd,
        env: msg.env,
        stdio: [msg.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      failed(msg.id, err);
      return;
    }
    let spawnError: unknown;
    child.on('error', (err) => {
      spawnError = err;
    });
    children.set(msg.id, child);
    child.stdout?.on('data', (d: Buffer) => send({ t: 'out', id: msg.id, fd: 1, data: d.toString('base64') }));
    child.stderr?.on('data', (d: Buffer) => send({ t: 'out', id: msg.id, fd: 2, data: d.toString('base64') }));
    if (child.stdin && msg.stdin !== undefined) {
      child.stdin.on('error', () => undefined); // the command may exit without reading it all
      child.stdin.end(Buffer.from(msg.stdin, 'base64'));
    }
    child.on('close', (code, signal) => {
      children.delete(msg.id);
      if (spawnError) failed(msg.id, spawnError);
      else send({ t: 'exit', id: msg.id, code, signal });
    });
  }

  // Like a shell: 127 when the command does not exist, 126 when it cannot be executed.
  function failed(id: number, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    const message = `bulkhead-agent: ${e.message ?? String(err)}\n`;
    send({ t: 'out', id, fd: 2, data: Buffer.from(message).toString('base64') });
    send({ t: 'exit', id, code: e.code === 'ENOENT' ? 127 : 126, signal: null });
  }

  function handle(line: string): void {
    let msg: { t: string; id: number; signal: string } & Parameters<typeof run>[0];
    try {
      msg = JSON.parse(line);
    } catch {
      send({ t: 'log', message: `unparsable request: ${line.slice(0, 200)}` });
      return;
    }
    if (msg.t === 'hello') ready();
    else if (msg.t === 'run') run(msg);
    else if (msg.t === 'signal') {
      try {
        children.get(msg.id)?.kill(msg.signal as NodeJS.Signals);
      } catch {
        // already exited
      }
    } else if (msg.t === 'shutdown') {
      for (const child of children.values()) child.kill('SIGKILL');
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
