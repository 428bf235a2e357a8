/**
 * The server's end of an exec stream: reads the START frame, spawns the process in the zone, and
 * relays its streams as frames under credit windows until the process ends (EXIT) or fails
 * (ERROR). If the client goes away first the process is killed: an exec lives as long as the
 * connection that started it.
 */
import type { Duplex } from 'node:stream';
import { InvalidConfigError } from '../errors';
import type { Zone } from '../zone/zone';
import type { SpawnOptions, ZoneProcess } from '../zone/types';
import { BadRequestError } from './errors';
import {
  DATA_CHUNK,
  encodeFrame,
  Frame,
  FrameReader,
  INITIAL_WINDOW,
  jsonFrame,
  parseJson,
  parseWindow,
  windowFrame,
  type FrameType,
} from './exec-frames';
import { errorToWire } from './wire';

export function serveExec(zone: Zone, socket: Duplex, head: Buffer): void {
  const reader = new FrameReader();
  const abort = new AbortController();
  let proc: ZoneProcess | undefined;
  let finished = false;
  const credit: Record<number, number> = { [Frame.STDOUT]: INITIAL_WINDOW, [Frame.STDERR]: INITIAL_WINDOW };
  const outputs = new Map<number, NodeJS.ReadableStream>();
  let stdinOwed = 0;
  let stdinBlocked = false;

  const send = (frame: Buffer) => {
    if (!socket.destroyed && socket.writable) socket.write(frame);
  };
  let outputsOpen = 2;
  let exitSent = false;
  /** After EXIT, the connection stays until stdout and stderr have ended (output still in flight is not lost). */
  const endWhenDrained = () => {
    if (exitSent && outputsOpen === 0 && !finished) {
      finished = true;
      socket.end();
    }
  };
  const exit = (end: unknown) => {
    if (finished) return;
    exitSent = true;
    send(jsonFrame(Frame.EXIT, end));
    endWhenDrained();
  };
  const fail = (err: unknown) => {
    if (finished) return;
    finished = true;
    send(jsonFrame(Frame.ERROR, errorToWire(err).error));
    socket.end();
  };

  const start = (payload: Buffer) => {
    const req = parseJson(Frame.START, payload) as Record<string, unknown>;
    const argv = req.argv;
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== 'string')) {
      throw new InvalidConfigError('argv', argv, 'a non-empty array of strings');
    }
    const opts: SpawnOptions = { signal: abort.signal };
    if (req.env !== undefined) opts.env = req.env as Record<string, string>;
    if (req.cwd !== undefined) opts.cwd = req.cwd as string;
    if (req.user !== undefined) opts.user = req.user as string;
    if (req.timeoutMs !== undefined) opts.timeoutMs = req.timeoutMs as number;
    if (req.tty !== undefined) opts.tty = req.tty as { cols: number; rows: number };
    proc = zone.spawn(argv as string[], opts);
    const p = proc;
    p.pid.then(
      (pid) => send(jsonFrame(Frame.PID, { pid })),
      () => undefined, // wait() reports the failure
    );
    relay(p.stdout, Frame.STDOUT, Frame.STDOUT_END);
    relay(p.stderr, Frame.STDERR, Frame.STDERR_END);
    p.stdin.on('error', () => undefined); // a process that exits without reading its stdin
    p.stdin.on('drain', () => {
      stdinBlocked = false;
      grantStdin();
    });
    p.wait().then(
      (end) => exit(end),
      (err: unknown) => fail(err),
    );
  };

  const relay = (stream: NodeJS.ReadableStream & { destroy?: () => void }, data: FrameType, end: FrameType) => {
    outputs.set(data, stream);
    stream.on('data', (chunk: Buffer) => {
      for (let at = 0; at < chunk.length; at += DATA_CHUNK) send(encodeFrame(data, chunk.subarray(at, at + DATA_CHUNK)));
      credit[data]! -= chunk.length;
      if (credit[data]! <= 0) stream.pause();
    });
    let open = true;
    const ended = () => {
      if (!open) return;
      open = false;
      send(encodeFrame(end));
      outputsOpen--;
      endWhenDrained();
    };
    stream.once('end', ended);
    stream.once('error', ended);
    stream.once('close', ended);
  };

  const grantStdin = () => {
    if (stdinOwed > 0 && !stdinBlocked) {
      send(windowFrame(Frame.STDIN, stdinOwed));
      stdinOwed = 0;
    }
  };

  const onFrame = (type: number, payload: Buffer) => {
    if (!proc) {
      if (type !== Frame.START) throw new BadRequestError(400, 'the first exec frame must be START');
      start(payload);
      return;
    }
    switch (type) {
      case Frame.STDIN:
        stdinOwed += payload.length;
        if (!proc.stdin.write(payload)) stdinBlocked = true;
        grantStdin();
        return;
      case Frame.STDIN_END:
        proc.stdin.end();
        return;
      case Frame.RESIZE: {
        const { cols, rows } = parseJson(type, payload) as { cols: number; rows: number };
        try {
          proc.resize(cols, rows);
        } catch {
          // not a tty, or already gone: the client checked what it could
        }
        return;
      }
      case Frame.SIGNAL: {
        const { signal } = parseJson(type, payload) as { signal: NodeJS.Signals | number };
        proc.kill(signal);
        return;
      }
      case Frame.ABORT:
        abort.abort();
        return;
      case Frame.WINDOW: {
        const { stream, bytes } = parseWindow(payload);
        if (credit[stream] === undefined) throw new BadRequestError(400, `WINDOW for stream 0x${stream.toString(16)}, which the client does not receive`);
        credit[stream]! += bytes;
        if (credit[stream]! > 0) outputs.get(stream)?.resume();
        return;
      }
      default:
        throw new BadRequestError(400, `frame 0x${type.toString(16)} is not sent by a client`);
    }
  };

  socket.on('data', (chunk: Buffer) => {
    if (finished) return;
    try {
      reader.push(chunk, onFrame);
    } catch (err) {
      if (proc) proc.kill('SIGKILL');
      fail(err);
    }
  });
  socket.on('error', () => undefined);
  socket.once('close', () => {
    if (!finished && proc) {
      proc.kill('SIGKILL');
      proc.stdin.destroy();
    }
    finished = true;
  });
  if (head.length) socket.emit('data', head);
}
