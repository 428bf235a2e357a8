/**
 * A 16550A UART on the VM (the C core's model, native/devices/serial.c): COM1 at port 0x3f8, IRQ 4 by default,
 * what a Linux guest's `console=ttyS0` writes to.
 *
 *   const con = vm.addSerialConsole({ onOutput: (bytes) => process.stdout.write(bytes) });
 *   con.write('root\n');                 // host -> guest
 *   for await (const chunk of con) ...   // guest -> host, until the VM stops
 *   con.recentText()                     // the last output, kept by the core (also after the VM stopped)
 *
 * Output is delivered on the JavaScript thread in batches, through the VM's own message queue: every byte the
 * guest sent arrives before the VM's 'stopped' event.
 */
import { EventEmitter } from 'node:events';
import { InvalidConfigError } from '../errors';
import { callNative } from './errors';
import { linuxNative } from './linux';
import type { NativeVm } from './native';
import { isIntegerIn } from './values';
import { Vm } from './vm';

export interface SerialConsoleOptions {
  /** First of the UART's 8 ports (default 0x3f8, COM1). */
  port?: number;
  /** The irqchip input (GSI) it raises (default 4, COM1). Interrupts need a VM with irqchip: true. */
  irq?: number;
  /** How many bytes of recent output the core keeps for recentOutput() (default 64 KiB). */
  ringBytes?: number;
  /** Called with each batch of bytes the guest sent. */
  onOutput?: (bytes: Buffer) => void;
}

export interface SerialConsoleEvents {
  /** A batch of bytes the guest sent. */
  data: [bytes: Buffer];
  /** Bytes JavaScript did not read in time (over 1 MiB waiting); they are still in recentOutput(). */
  dropped: [count: number];
  /** The VM stopped: no more output. */
  end: [];
}

const DEFAULT_RING = 64 * 1024;
const KNOWN_FIELDS = ['port', 'irq', 'ringBytes', 'onOutput'] as const;
/** Consoles stay alive as long as their VM does (the native side only holds them weakly). */
const consolesOf = new WeakMap<Vm, SerialConsole[]>();

export class SerialConsole extends EventEmitter<SerialConsoleEvents> {
  readonly port: number;
  readonly irq: number;
  readonly ringBytes: number;
  readonly #vm: Vm;
  /** Kept so recentOutput() works after destroy: the device lives as long as the native VM object. */
  readonly #native: NativeVm;
  readonly #id: number;
  readonly #onOutput: ((bytes: Buffer) => void) | undefined;
  #ended = false;
  #dropped = 0;
  readonly #queue: Buffer[] = [];
  readonly #waiters: Array<(r: IteratorResult<Buffer>) => void> = [];
  #iterating = false;

  /** @internal Use vm.addSerialConsole() or addSerialConsole(vm). */
  constructor(vm: Vm, options: SerialConsoleOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw new InvalidConfigError('serial', options, 'an object { port?, irq?, ringBytes?, onOutput? }');
    }
    for (const key of Object.keys(options)) {
      if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
        throw new InvalidConfigError(`serial.${key}`, (options as Record<string, unknown>)[key], `no such field; known fields: ${KNOWN_FIELDS.join(', ')}`);
      }
    }
    const port = options.port ?? 0x3f8;
    const irq = options.irq ?? 4;
    const ring = options.ringBytes ?? DEFAULT_RING;
    if (!isIntegerIn(port, 0, 0xfff8)) throw new InvalidConfigError('serial.port', port, 'an integer 0 .. 0xfff8 (the UART takes 8 ports)');
    if (!isIntegerIn(irq, 0, 23)) throw new InvalidConfigError('serial.irq', irq, 'an IOAPIC input 0 .. 23');
    if (!isIntegerIn(ring, 1, 256 * 1024 * 1024)) throw new InvalidConfigError('serial.ringBytes', ring, 'an integer 1 .. 256 MiB');
    if (options.onOutput !== undefined && typeof options.onOutput !== 'function') {
      throw new InvalidConfigError('serial.onOutput', options.onOutput, 'a function (bytes: Buffer) => void');
    }
    this.port = port;
    this.irq = irq;
    this.ringBytes = ring;
    this.#vm = vm;
    this.#onOutput = options.onOutput;
    const native = vm.nativeFor('add a serial console');
    this.#native = native;
    const callback = SerialConsole.#nativeCallback(new WeakRef(this));
    this.#id = callNative(() => linuxNative().serialCreate(native, port, irq, ring, callback));
    vm.once('stopped', () => this.#end());
  }

  /**
   * The function the native side keeps for the VM's life. It must not keep the console (or the VM) alive, so
   * it holds a WeakRef and is made here, where nothing else is in scope: a closure made in the constructor
   * would share the constructor's context, which holds `this` (V8 keeps one context per scope).
   */
  static #nativeCallback(ref: WeakRef<SerialConsole>): (bytes: Buffer, dropped: number) => void {
    return (bytes, dropped) => {
      const con = ref.deref();
      if (con) con.#receive(bytes, dropped);
    };
  }

  /**
   * Sends bytes to the guest (a string is UTF-8). Returns how many were queued: the receive queue holds
   * 4 KiB, like a FIFO the guest has not drained yet; see writeAll() to wait for room.
   */
  write(data: string | Uint8Array): number {
    const bytes = toBytes(data);
    const native = this.#vm.nativeFor('write to the serial console');
    return callNative(() => linuxNative().serialInput(native, this.#id, bytes));
  }

  /** Sends all of `data`, waiting (every `retryMs`) while the guest's receive queue is full. */
  async writeAll(data: string | Uint8Array, retryMs = 10): Promise<void> {
    let bytes = toBytes(data);
    while (bytes.length > 0) {
      const n = this.write(bytes);
      bytes = bytes.subarray(n);
      if (bytes.length > 0) await new Promise((r) => setTimeout(r, retryMs));
    }
  }

  /** The last `maxBytes` (default: all the ring holds) bytes the guest sent. Still works after the VM stopped or was destroyed. */
  recentOutput(maxBytes = this.ringBytes): Buffer {
    if (!isIntegerIn(maxBytes, 0, 0xffffffff)) throw new InvalidConfigError('maxBytes', maxBytes, 'an integer 0 .. 2^32-1');
    return callNative(() => linuxNative().serialRecentOutput(this.#native, this.#id, maxBytes));
  }

  /** recentOutput() as text (UTF-8, invalid sequences replaced). */
  recentText(maxBytes?: number): string {
    return this.recentOutput(maxBytes).toString('utf8');
  }

  /** Output bytes the console could not queue for JavaScript (they are still in recentOutput()). */
  get droppedBytes(): number {
    return this.#dropped;
  }

  /** Whether the VM has stopped (no more output will come). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * The guest's output as it arrives, until the VM stops. Only output from the first call on is seen; one
   * iterator per console.
   */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#iterating) throw new InvalidConfigError('serial console iterator', 'a second one', 'one iterator per console');
    this.#iterating = true;
    return {
      next: () => {
        const chunk = this.#queue.shift();
        if (chunk) return Promise.resolve({ value: chunk, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push(resolve));
      },
      return: () => {
        this.#iterating = false;
        this.#queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #receive(bytes: Buffer, dropped: number): void {
    if (dropped > 0) {
      this.#dropped += dropped;
      this.emit('dropped', dropped);
    }
    if (bytes.length === 0) return;
    if (this.#iterating) {
      const waiter = this.#waiters.shift();
      if (waiter) waiter({ value: bytes, done: false });
      else this.#queue.push(bytes);
    }
    // A throwing listener must not break delivery (this runs from the addon's queue).
    try {
      this.#onOutput?.(bytes);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
    this.emit('data', bytes);
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true });
    this.emit('end');
  }
}

function toBytes(data: string | Uint8Array): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  throw new InvalidConfigError('data', data, 'a string or a Uint8Array');
}

/** Adds a 16550A UART to the VM (see SerialConsoleOptions). Any time before or while it runs. */
export function addSerialConsole(vm: Vm, options: SerialConsoleOptions = {}): SerialConsole {
  const con = new SerialConsole(vm, options);
  const list = consolesOf.get(vm) ?? [];
  list.push(con);
  consolesOf.set(vm, list);
  return con;
}

declare module './vm' {
  interface Vm {
    /** Adds a 16550A UART (COM1 by default). See addSerialConsole(). */
    addSerialConsole(options?: SerialConsoleOptions): SerialConsole;
  }
}

Vm.prototype.addSerialConsole = function addSerialConsoleMethod(this: Vm, options?: SerialConsoleOptions): SerialConsole {
  return addSerialConsole(this, options);
};
