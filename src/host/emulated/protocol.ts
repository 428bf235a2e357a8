/**
 * The control protocol between EmulatedHost (outside) and its agent (inside the emulated host),
 * carried by the virtio-serial port `bulkhead.ctl`: one JSON object per line, byte payloads in
 * base64. Simple to debug (socat the socket and read it) and fast enough for command output.
 *
 * Outside → inside:
 *   hello                                  answered by `ready` (the agent also sends one unasked)
 *   run     id argv cwd env stdin?         start a command; stdin is base64, absent = /dev/null
 *   signal  id signal                      signal a running command
 *   shutdown                               stop the agent; the init then powers the machine off
 * Inside → outside:
 *   ready   release nodeVersion uptime     the agent is up
 *   out     id fd(1|2) data                a chunk of the command's stdout or stderr
 *   exit    id code signal                 the command ended (code null when killed by a signal)
 */

export const PROTOCOL_VERSION = 1;
export const CONTROL_PORT_NAME = 'bulkhead.ctl';

export type HostToAgent =
  | { t: 'hello' }
  | { t: 'run'; id: number; argv: string[]; cwd: string; env: Record<string, string>; stdin?: string }
  | { t: 'signal'; id: number; signal: string }
  | { t: 'shutdown' };

export type AgentToHost =
  | { t: 'ready'; protocol: number; release: string; nodeVersion: string; uptime: number }
  | { t: 'out'; id: number; fd: 1 | 2; data: string }
  | { t: 'exit'; id: number; code: number | null; signal: string | null }
  | { t: 'log'; message: string };

export function encodeMessage(msg: HostToAgent | AgentToHost): string {
  return JSON.stringify(msg) + '\n';
}

/** Splits a byte stream into lines and parses each as one message. */
export class LineDecoder<T> {
  private pending = '';

  constructor(private readonly onMessage: (msg: T) => void, private readonly onGarbage?: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    this.pending += chunk.toString();
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).trim();
      this.pending = this.pending.slice(nl + 1);
      if (line === '') continue;
      let msg: T;
      try {
        msg = JSON.parse(line) as T;
      } catch {
        this.onGarbage?.(line);
        continue;
      }
      this.onMessage(msg);
    }
  }
}
