/**
 * The control protocol between EmulatedHost (outside) and its agent (inside the emulated host),
 * carried by the virtio-serial port `bulkhead.ctl`, and, unchanged, between a keeper process that
 * owns a running host and its clients (`EmulatedHost.connect`). One JSON object per line; bytes
 * travel base64-encoded and are never decoded as text on the way.
 *
 * Outside → inside:
 *   hello                                  answered by `ready`
 *   run      id argv cwd env stdin          start a command in its own process group; stdin true = a
 *                                          stream follows (`stdin` / `stdin-end`), false = /dev/null
 *   connect  id path                        open a connection to a Unix socket inside; relayed like a
 *                                          command: `out` fd 1 is what it sends, `stdin` what it gets,
 *                                          `exit` (code 0, or 1 with the reason on fd 2) when it closes
 *   stdin    id data                        bytes for the command's stdin
 *   stdin-end id                            close the command's stdin
 *   ack      id bytes                       the outside consumed this many output bytes of `id`
 *   signal   id signal                      signal the command's whole process group
 *   shutdown                               stop the agent; the init then powers the machine off
 * Inside → outside:
 *   ready    protocol release nodeVersion uptime
 *   out      id fd(1|2) data                a chunk of the command's stdout or stderr
 *   stdin-ack id bytes                      this many stdin bytes reached the command's pipe
 *   exit     id code signal                 the command ended (code null when killed by a signal)
 *   log      message                        agent diagnostics, kept with the console
 *
 * Flow control both ways is a window: the agent stops reading a command's output while more than
 * OUTPUT_WINDOW bytes are sent and not acked; the outside keeps at most STDIN_WINDOW stdin bytes
 * in flight. Memory stays bounded however fast either side produces.
 */

export const PROTOCOL_VERSION = 2;
export const CONTROL_PORT_NAME = 'bulkhead.ctl';
export const OUTPUT_WINDOW = 1024 * 1024;
export const STDIN_WINDOW = 1024 * 1024;
/** Longest line either side accepts; a longer one is a protocol error that ends the channel. */
export const MAX_LINE = 4 * 1024 * 1024;

export type HostToAgent =
  | { t: 'hello' }
  | { t: 'run'; id: number; argv: string[]; cwd: string; env: Record<string, string>; stdin: boolean }
  | { t: 'connect'; id: number; path: string }
  | { t: 'stdin'; id: number; data: string }
  | { t: 'stdin-end'; id: number }
  | { t: 'ack'; id: number; bytes: number }
  | { t: 'signal'; id: number; signal: string }
  | { t: 'shutdown' };

export type AgentToHost =
  | { t: 'ready'; protocol: number; release: string; nodeVersion: string; uptime: number }
  | { t: 'out'; id: number; fd: 1 | 2; data: string }
  | { t: 'stdin-ack'; id: number; bytes: number }
  | { t: 'exit'; id: number; code: number | null; signal: string | null }
  | { t: 'log'; message: string };

export function encodeMessage(msg: HostToAgent | AgentToHost): string {
  return JSON.stringify(msg) + '\n';
}

/**
 * Splits a byte stream into lines and parses each as one message. Works on bytes, so a chunk that
 * ends inside a multi-byte character is fine; a line over MAX_LINE is reported, not buffered.
 */
export class LineDecoder<T> {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onMessage: (msg: T) => void,
    private readonly onGarbage?: (line: string) => void,
    private readonly onOverlong?: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf(0x0a, start)) >= 0) {
      const piece = chunk.subarray(start, nl);
      const line = this.pending.length > 0 ? Buffer.concat([...this.pending, piece]) : piece;
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
      this.parse(line.toString('utf8').trim());
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > MAX_LINE) {
        this.pending = [];
        this.pendingBytes = 0;
        this.onOverlong?.();
      }
    }
  }

  private parse(line: string): void {
    if (line === '') return;
    let msg: T;
    try {
      msg = JSON.parse(line) as T;
    } catch {
      this.onGarbage?.(line.slice(0, 200));
      return;
    }
    this.onMessage(msg);
  }
}
