/**
 * A zone's log: one timeline of console output, agent reports, VMM and lifecycle events. Kept in
 * memory (the last MAX_ENTRIES) for replay and follow, and appended to log.jsonl in the state
 * directory while the zone exists. Console bytes are cut into lines; a partial line waits up to
 * FLUSH_MS for its end.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { EventEmitter, on } from 'node:events';
import type { LogEntry, LogOptions } from './types';

const MAX_ENTRIES = 10_000;
const MAX_LINE = 16 * 1024;
const FLUSH_MS = 200;

export class ZoneLog {
  private readonly entries: LogEntry[] = [];
  private readonly emitter = new EventEmitter();
  private file: WriteStream | undefined;
  private partial = '';
  private partialTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(file?: string) {
    this.emitter.setMaxListeners(0);
    if (file) {
      this.file = createWriteStream(file, { flags: 'a', mode: 0o600 });
      this.file.on('error', () => (this.file = undefined)); // the state dir went away: keep the memory log
    }
  }

  add(source: LogEntry['source'], text: string): void {
    if (this.closed) return;
    const entry: LogEntry = { time: Date.now(), source, text: text.length > MAX_LINE ? text.slice(0, MAX_LINE) : text };
    this.entries.push(entry);
    if (this.entries.length > MAX_ENTRIES) this.entries.splice(0, this.entries.length - MAX_ENTRIES);
    this.file?.write(JSON.stringify(entry) + '\n');
    this.emitter.emit('entry', entry);
  }

  /** Console bytes, as lines (carriage returns dropped). */
  console(bytes: Buffer): void {
    this.partial += bytes.toString('utf8').replace(/\r/g, '');
    const lines = this.partial.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.add('console', line);
    if (this.partial.length > MAX_LINE) this.flushPartial();
    clearTimeout(this.partialTimer);
    if (this.partial) this.partialTimer = setTimeout(() => this.flushPartial(), FLUSH_MS).unref();
  }

  /** The last `n` console lines, for failure reports. */
  consoleTail(n = 20): string {
    this.flushPartial();
    return this.entries
      .filter((e) => e.source === 'console')
      .slice(-n)
      .map((e) => e.text)
      .join('\n');
  }

  /** Replays what is kept (from `since`), then with `follow` yields new entries until close() or the signal. */
  async *read(opts: LogOptions = {}): AsyncGenerator<LogEntry> {
    const since = opts.since ?? 0;
    // Subscribe before replaying, so nothing added in between is lost.
    const live = opts.follow && !this.closed ? on(this.emitter, 'entry', { signal: opts.signal }) : undefined;
    const replayed = this.entries.filter((e) => e.time >= since);
    for (const e of replayed) yield e;
    if (!live) return;
    const last = replayed[replayed.length - 1];
    try {
      for await (const [entry] of live as AsyncIterable<[LogEntry | 'closed']>) {
        if (entry === 'closed') return;
        if (last && entry.time <= last.time && replayed.includes(entry)) continue;
        yield entry;
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  }

  /** Ends every follower; the file is flushed and closed. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flushPartial();
    this.closed = true;
    this.emitter.emit('entry', 'closed');
    const file = this.file;
    this.file = undefined;
    return new Promise((resolve) => (file ? file.end(resolve) : resolve()));
  }

  private flushPartial(): void {
    clearTimeout(this.partialTimer);
    if (this.partial) {
      const text = this.partial;
      this.partial = '';
      this.add('console', text);
    }
  }
}
