/**
 * bootLinux(): one call from kernel to "how did it end". Creates a VM (with irqchip), adds the serial console,
 * the i8042 and power-off detection, loads the kernel, starts it, and resolves when the guest is done:
 *
 *   const r = await bootLinux({ kernel, initrd, cmdline: 'console=ttyS0 reboot=k panic=-1', timeoutMs: 60_000 });
 *   r.reason   // 'power-off' | 'reset' | 'shutdown' | 'crash' | 'timeout' | ...
 *
 * A kernel panic on the console is a 'crash' (whatever the VM does next: panic=-1 reboots it), with the last
 * console lines in consoleTail. The VM is destroyed before the promise settles; an aborted `signal`
 * stops and destroys it too, and rejects with AbortedError.
 */
import { AbortedError, InvalidConfigError } from '../errors';
import type { VmExit } from './exits';
import { createVm, type Kvm } from './hypervisor';
import { loadLinux, type LinuxBootInfo, type LinuxEntry } from './linux';
import { classifyEnd, I8042, watchPowerOff, type GuestEndReason } from './power';
import { addSerialConsole, type SerialConsole } from './serial';
import { isIntegerIn } from './values';
import type { Vm } from './vm';

/** What Linux prints when it panics (bh-boot looks for the same line). */
export const PANIC_MARKER = 'Kernel panic - not syncing';
export const DEFAULT_LINUX_CMDLINE = 'console=ttyS0 reboot=k panic=-1';

export interface BootLinuxOptions {
  /** vmlinux or bzImage, bytes or a path. */
  kernel: Uint8Array | string;
  initrd?: Uint8Array | string;
  /** Default DEFAULT_LINUX_CMDLINE: console on ttyS0, reboot through the i8042, reboot at once on panic. */
  cmdline?: string;
  entry?: LinuxEntry;
  /** Default 256. */
  memoryMiB?: number;
  /** Default 1. */
  vcpus?: number;
  /** Stop the VM after this long (reason 'timeout'). Default: no limit. */
  timeoutMs?: number;
  /** Each batch of console output, as it arrives. */
  onConsole?: (bytes: Buffer) => void;
  /** Called after the VM started, e.g. to write to the console. */
  onStart?: (ctx: { vm: Vm; console: SerialConsole }) => void;
  /** The hypervisor to use (default: the process-wide one createVm() opens). */
  kvm?: Kvm;
  /** How often to look for a powered-off guest (default 300 ms; each look pauses the VM briefly). */
  haltCheckMs?: number;
  /** After a panic line, how long the guest may take to end itself before it is stopped (default 2000 ms). */
  panicGraceMs?: number;
  /** How many console lines consoleTail keeps (default 20). */
  tailLines?: number;
  /** Aborting stops and destroys the VM; bootLinux then rejects with AbortedError. */
  signal?: AbortSignal;
}

export type BootLinuxReason = GuestEndReason | 'timeout';

export interface BootLinuxResult {
  /** 'power-off', 'reset' (i8042), 'shutdown' (triple fault), 'crash' (kernel panic or a failed VM), 'timeout', ... */
  reason: BootLinuxReason;
  /** A few words on the reason, e.g. "kernel panic" or the failing exit's message. */
  detail: string;
  /** The last console lines. */
  consoleTail: string;
  /** Whether the console showed a kernel panic. */
  panicked: boolean;
  bootInfo: LinuxBootInfo;
  exits: VmExit[];
  /** From start() to the VM's end. */
  durationMs: number;
}

const KNOWN_FIELDS = [
  'kernel', 'initrd', 'cmdline', 'entry', 'memoryMiB', 'vcpus', 'timeoutMs', 'onConsole', 'onStart', 'kvm',
  'haltCheckMs', 'panicGraceMs', 'tailLines', 'signal',
] as const;
const TAIL_BYTES = 8192;

/** The last `lines` lines of `text` (a partial last line counts). */
export function lastLines(text: string, lines: number): string {
  const all = text.split('\n');
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  return all.slice(-lines).join('\n');
}

/**
 * The last `lines` lines of `text`, and, when the panic line is older than those (its register dump
 * and stack trace are longer than a short tail), that line first, so the tail always says why.
 */
export function tailWithPanic(text: string, lines: number): string {
  const tail = lastLines(text, lines);
  if (tail.includes(PANIC_MARKER)) return tail;
  const at = text.lastIndexOf(PANIC_MARKER);
  if (at < 0) return tail;
  const start = text.lastIndexOf('\n', at) + 1;
  const end = text.indexOf('\n', at);
  const panicLine = text.slice(start, end < 0 ? undefined : end).replace(/\r$/, '');
  return `${panicLine}\n[…]\n${lastLines(text, Math.max(1, lines - 2))}`;
}

/** Watches console output for the panic line, across batch boundaries. */
class PanicDetector {
  #line = '';
  seen = false;

  push(bytes: Buffer): boolean {
    if (this.seen) return false;
    const text = this.#line + bytes.toString('latin1');
    const lines = text.split('\n');
    this.#line = (lines.pop() ?? '').slice(-512);
    // The marker may also sit in the unfinished line: the kernel prints it before the newline.
    if ([...lines, this.#line].some((l) => l.includes(PANIC_MARKER))) {
      this.seen = true;
      return true;
    }
    return false;
  }
}

function validate(options: BootLinuxOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidConfigError('options', options, 'an object { kernel, initrd?, cmdline?, ... }');
  }
  for (const key of Object.keys(options)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      throw new InvalidConfigError(key, (options as unknown as Record<string, unknown>)[key], `no such field; known fields: ${KNOWN_FIELDS.join(', ')}`);
    }
  }
  const ms = (field: string, v: unknown, min: number) => {
    if (v !== undefined && !isIntegerIn(v, min, 2 ** 31)) throw new InvalidConfigError(field, v, `an integer number of milliseconds >= ${min}`);
  };
  ms('timeoutMs', options.timeoutMs, 1);
  ms('haltCheckMs', options.haltCheckMs, 10);
  ms('panicGraceMs', options.panicGraceMs, 0);
  if (options.tailLines !== undefined && !isIntegerIn(options.tailLines, 1, 10_000)) {
    throw new InvalidConfigError('tailLines', options.tailLines, 'an integer 1 .. 10000');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new InvalidConfigError('signal', options.signal, 'an AbortSignal');
  }
  for (const f of ['onConsole', 'onStart'] as const) {
    if (options[f] !== undefined && typeof options[f] !== 'function') throw new InvalidConfigError(f, options[f], 'a function');
  }
}

/** Boots a Linux kernel in a new VM and resolves with how it ended. See BootLinuxOptions. */
export async function bootLinux(options: BootLinuxOptions): Promise<BootLinuxResult> {
  validate(options);
  const { signal } = options;
  if (signal?.aborted) throw new AbortedError('booting Linux', { cause: signal.reason });
  const config = { memoryMiB: options.memoryMiB ?? 256, vcpus: options.vcpus ?? 1, irqchip: true };
  const vm = options.kvm ? options.kvm.createVm(config) : createVm(config);
  try {
    const panic = new PanicDetector();
    let panicAt: number | undefined;
    let ended: 'timeout' | 'panic' | 'aborted' | undefined;
    let wake: () => void = () => undefined;
    const console = addSerialConsole(vm, {
      ringBytes: 64 * 1024,
      onOutput: (bytes) => {
        if (panic.push(bytes)) {
          panicAt = Date.now();
          wake();
        }
        options.onConsole?.(bytes);
      },
    });
    new I8042(vm);
    const bootInfo = loadLinux(vm, {
      kernel: options.kernel,
      ...(options.initrd !== undefined ? { initrd: options.initrd } : {}),
      cmdline: options.cmdline ?? DEFAULT_LINUX_CMDLINE,
      ...(options.entry !== undefined ? { entry: options.entry } : {}),
    });
    const power = watchPowerOff(vm, { intervalMs: options.haltCheckMs ?? 300 });
    const started = Date.now();
    vm.start();
    options.onStart?.({ vm, console });

    // Wait for the VM to end, a timeout, or the end of a panic's grace period, whichever comes first.
    const timers: NodeJS.Timeout[] = [];
    let onAbort = (): void => undefined;
    await new Promise<void>((resolve) => {
      wake = () => {
        if (panicAt === undefined) return;
        timers.push(
          setTimeout(() => {
            ended ??= 'panic';
            resolve();
          }, options.panicGraceMs ?? 2000),
        );
      };
      if (panicAt !== undefined) wake();
      if (options.timeoutMs !== undefined) {
        timers.push(
          setTimeout(() => {
            ended ??= 'timeout';
            resolve();
          }, options.timeoutMs),
        );
      }
      void vm.waitForStop().then(() => resolve());
      onAbort = () => {
        ended ??= 'aborted';
        resolve();
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    for (const t of timers) clearTimeout(t);
    signal?.removeEventListener('abort', onAbort);
    power.cancel();
    if (vm.state !== 'stopped') await vm.stop();
    const durationMs = Date.now() - started;
    if (ended === 'aborted') throw new AbortedError(`booting Linux (after ${durationMs} ms)`, { cause: signal?.reason });

    const consoleTail = tailWithPanic(console.recentText(TAIL_BYTES), options.tailLines ?? 20);
    const exits = [...vm.exits];
    const base = { consoleTail, panicked: panic.seen, bootInfo, exits, durationMs };
    if (panic.seen) return { reason: 'crash', detail: 'kernel panic', ...base };
    if (ended === 'timeout') return { reason: 'timeout', detail: `no end within ${options.timeoutMs} ms`, ...base };
    return { ...classifyEnd(exits), ...base };
  } finally {
    await vm.destroy();
  }
}
