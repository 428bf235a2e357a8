/**
 * Host → guest vsock connections through the VMM's Unix socket, Firecracker's way: connect to the
 * socket, write `CONNECT <port>\n`, read `OK <host port>\n`, and the rest of the stream is the
 * guest's. When nothing listens on that port in the guest, the VMM closes the connection; during
 * boot that is expected, so connectVsock() retries until the deadline.
 */
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError, BulkheadError } from '../errors';

export interface VsockConnectOptions {
  /** Keep trying until then (ms since the epoch); default: one attempt. */
  until?: number;
  /** Pause between attempts (default 25 ms). */
  retryMs?: number;
  signal?: AbortSignal;
}

/** The most the VMM's answer line may be; anything longer is not the protocol. */
const MAX_REPLY = 64;

export async function connectVsock(udsPath: string, port: number, opts: VsockConnectOptions = {}): Promise<net.Socket> {
  let lastError: Error | undefined;
  do {
    if (opts.signal?.aborted) throw new AbortedError(`connecting to vsock port ${port}`);
    try {
      return await attempt(udsPath, port);
    } catch (err) {
      lastError = err as Error;
    }
    if (opts.until === undefined || Date.now() >= opts.until) break;
    await sleep(opts.retryMs ?? 25, undefined, { signal: opts.signal }).catch(() => undefined);
  } while (Date.now() < (opts.until ?? 0));
  throw new BulkheadError('HYPERVISOR_ERROR', `cannot connect to guest vsock port ${port} through ${udsPath}: ${lastError?.message ?? 'no attempt'}`, {
    cause: lastError,
  });
}

function attempt(udsPath: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(udsPath);
    let reply = Buffer.alloc(0);
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(why));
    };
    socket.once('error', (err) => fail(err.message));
    socket.once('close', () => fail('the VMM closed the connection (nothing listens on that port yet)'));
    socket.once('connect', () => socket.write(`CONNECT ${port}\n`));
    const onData = (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      const nl = reply.indexOf(0x0a);
      if (nl < 0) {
        if (reply.length > MAX_REPLY) fail(`unexpected answer from the VMM: ${JSON.stringify(reply.toString('latin1').slice(0, MAX_REPLY))}`);
        return;
      }
      const line = reply.subarray(0, nl).toString('latin1');
      if (!/^OK \d+$/.test(line)) return fail(`unexpected answer from the VMM: ${JSON.stringify(line)}`);
      socket.off('data', onData);
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      const rest = reply.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
  });
}
