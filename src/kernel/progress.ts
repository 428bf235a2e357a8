/**
 * Progress of a long build on stderr: on a terminal one status line rewritten in place, otherwise
 * one line every `intervalMs` (CI logs stay short but never silent).
 */
export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Each progress line to this callback instead of a stream (for embedders: a zone's log, a UI). */
  onLine?: (line: string) => void;
  /** Force the in-place mode on or off (default: stream.isTTY). */
  tty?: boolean;
  intervalMs?: number;
}

export class ProgressLine {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private readonly started = Date.now();
  private lastPrinted = 0;
  private shown = false;
  private readonly timer: NodeJS.Timeout;
  private status = '';
  private readonly onLine: ((line: string) => void) | undefined;

  constructor(
    private readonly label: string,
    opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.onLine = opts.onLine;
    this.tty = this.onLine ? false : (opts.tty ?? Boolean(this.stream.isTTY));
    this.intervalMs = opts.intervalMs ?? (this.tty ? 250 : 10_000);
    // Tick even when nothing new was compiled (a long link step still shows the time moving).
    this.timer = setInterval(() => this.render(false), this.tty ? 1000 : this.intervalMs);
    this.timer.unref();
  }

  elapsedSeconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  update(status: string): void {
    this.status = status;
    this.render(false);
  }

  /** A message that must not be overwritten (a phase change, a warning). */
  note(message: string): void {
    this.clear();
    this.line(`${this.label}: ${message}`);
  }

  done(message: string): void {
    clearInterval(this.timer);
    this.clear();
    this.line(`${this.label}: ${message}`);
  }

  private line(text: string): void {
    if (this.onLine) this.onLine(text);
    else this.stream.write(text + '\n');
  }

  private render(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastPrinted < this.intervalMs) return;
    this.lastPrinted = now;
    const line = `${this.label}: ${this.status} [${formatDuration(this.elapsedSeconds())}]`;
    if (this.tty) {
      const width = this.stream.columns ? this.stream.columns - 1 : 120;
      this.stream.write(`\r\x1b[K${line.slice(0, width)}`);
      this.shown = true;
    } else {
      this.line(line);
    }
  }

  private clear(): void {
    if (this.tty && this.shown) {
      this.stream.write('\r\x1b[K');
      this.shown = false;
    }
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
