/**
 * A virtual machine: guest RAM, vCPUs running on their own native threads, and the I/O handlers that
 * answer the guest. Lifecycle: created → running ⇄ paused → stopped → (destroy) destroyed.
 *
 * Events (all on the JavaScript thread, in the order they happened):
 *  - 'exit' (exit: VmExit): one vCPU left its run loop for good (HLT, triple fault, stop, ...).
 *  - 'stateChange' (state, previous): the VM's state changed.
 *  - 'stopped' (exits: VmExit[]): every vCPU has exited; emitted once, after every 'exit'.
 *  - 'handlerError' ({ vcpu, access, error }): a port/MMIO handler threw; the VM stops with 'io-error'.
 */
import { EventEmitter } from 'node:events';
import { DestroyedError, InvalidConfigError, InvalidStateError } from '../errors';
import { callNative, callNativeAsync, isNativeError, translateNativeError } from './errors';
import { exitFromNative, type VmExit } from './exits';
import {
  accessFromNative,
  ioValueToU64,
  validateHandler,
  validateMmioRange,
  validatePortRange,
  type IoAccess,
  type IoHandler,
  type IoValue,
} from './io';
import { Ioeventfd, Irqfd } from './irq';
import { GuestMemory } from './memory';
import type { NativeAddon, NativeExit, NativeIoMessage, NativeKvm, NativeStateMessage, NativeStats, NativeVm } from './native';
import type { ValidatedVmConfig } from './config';
import { Vcpu } from './vcpu';
import { isIntegerIn, toU64 } from './values';

export type VmState = 'created' | 'running' | 'paused' | 'stopped' | 'destroyed';

export interface VmEvents {
  exit: [exit: VmExit];
  stateChange: [state: VmState, previous: VmState];
  stopped: [exits: VmExit[]];
  handlerError: [info: { vcpu: number; access: IoAccess; error: unknown }];
}

export type VmStats = NativeStats;

export interface IoeventfdOptions {
  /** Port number or guest-physical address. */
  addr: number | bigint;
  /** Access width that matches: 1, 2, 4 or 8 bytes. */
  length: 1 | 2 | 4 | 8;
  space: 'pio' | 'mmio';
  /** Only writes of exactly this value signal the eventfd. */
  datamatch?: number | bigint;
}

const STATE_NAMES: Record<number, VmState> = { 0: 'created', 1: 'running', 2: 'paused', 3: 'stopped' };
/** How long stop() waits for the 'stopped' event after the vCPU threads were joined. */
const STOPPED_EVENT_GRACE_MS = 2000;

/**
 * VMs that were started and have not stopped: kept reachable so a running guest is never collected. A VM
 * that is not running and no longer referenced is collected, and the addon then destroys it (so a
 * forgotten destroy() leaks nothing for long; destroy() or `await using` remain the way to release at once).
 */
const started = new Set<Vm>();

export class Vm extends EventEmitter<VmEvents> {
  /** Guest RAM. */
  readonly memory: GuestMemory;
  readonly vcpuCount: number;
  readonly memoryMiB: number;

  #native: NativeVm | undefined;
  readonly #addon: NativeAddon;
  readonly #vcpus: Vcpu[] = [];
  readonly #handlers: IoHandler[] = [];
  readonly #exits: VmExit[] = [];
  readonly #handlerErrors = new Map<number, unknown>();
  #observed: VmState = 'created';
  #stoppedSeen = false;
  readonly #stopWaiters = new Set<() => void>();
  #lifecycle: Promise<unknown> = Promise.resolve();
  #destroying: Promise<void> | undefined;

  /** @internal Use Kvm.createVm() or createVm(). */
  constructor(addon: NativeAddon, kvm: NativeKvm, config: ValidatedVmConfig) {
    super();
    this.#addon = addon;
    this.vcpuCount = config.vcpus;
    this.memoryMiB = config.memoryMiB;
    this.memory = new GuestMemory(this);
    // The addon holds this callback for the VM's whole life: it must not keep the Vm itself alive.
    const self = new WeakRef(this);
    this.#native = callNative(
      () =>
        new addon.Vm(
          kvm,
          { memoryBytes: config.memoryBytes, vcpus: config.vcpus, irqchip: config.irqchip },
          (kind, payload) => {
            const vm = self.deref();
            if (vm) vm.#onMessage(kind, payload);
          },
        ),
    );
    for (let i = 0; i < config.vcpus; i++) this.#vcpus.push(new Vcpu(this, i));
  }

  /** 'created' | 'running' | 'paused' | 'stopped' | 'destroyed'. */
  get state(): VmState {
    if (!this.#native || this.#destroying) return 'destroyed';
    return STATE_NAMES[this.#native.state()] ?? 'stopped';
  }

  /** Every vCPU exit so far, in order. */
  get exits(): readonly VmExit[] {
    return this.#exits;
  }

  /** Whether the in-kernel irqchip was created (asked for, and supported by the host). */
  get hasIrqchip(): boolean {
    return callNative(() => this.nativeFor('query the irqchip').hasIrqchip());
  }

  /** The KVM VM fd, for ioctls this API does not wrap. Owned by the VM. */
  get fd(): number {
    return callNative(() => this.nativeFor('get the VM fd').vmFd());
  }

  vcpu(index: number): Vcpu {
    this.nativeFor('get a vCPU');
    if (!isIntegerIn(index, 0, this.vcpuCount - 1)) {
      throw new InvalidConfigError('vcpu', index, `an integer 0 .. ${this.vcpuCount - 1}`);
    }
    return this.#vcpus[index] as Vcpu;
  }

  /** Handles the guest's IN/OUT on ports [base, base+length). */
  onPort(base: number, length: number, handler: IoHandler): void {
    const native = this.nativeFor('register a port handler');
    const range = validatePortRange(base, length);
    const fn = validateHandler('onPort.handler', handler);
    const id = this.#handlers.length;
    this.#register(() => native.registerPio(range.base, range.length, id), 'onPort.base', base);
    this.#handlers.push(fn);
  }

  /** Handles the guest's loads/stores to guest-physical [base, base+length) (outside RAM). */
  onMmio(base: number | bigint, length: number | bigint, handler: IoHandler): void {
    const native = this.nativeFor('register an MMIO handler');
    const range = validateMmioRange(base, length);
    const fn = validateHandler('onMmio.handler', handler);
    const id = this.#handlers.length;
    this.#register(() => native.registerMmio(range.base, range.length, id), 'onMmio.base', base);
    this.#handlers.push(fn);
  }

  #register(fn: () => void, field: string, value: unknown): void {
    try {
      fn();
    } catch (err) {
      if (isNativeError(err) && (err.bhStatus === 'BH_E_BUSY' || err.bhStatus === 'BH_E_INVALID_ARG')) {
        throw new InvalidConfigError(field, value, `a range that is free: ${err.coreMessage ?? err.message}`);
      }
      throw translateNativeError(err);
    }
  }

  /** Starts every vCPU on its own thread (created → running). */
  start(): void {
    const native = this.nativeFor('start');
    const state = this.state;
    if (state !== 'created') throw new InvalidStateError('start', state, ['created']);
    callNative(() => native.start());
    if (!this.#stoppedSeen) started.add(this);
  }

  /** Parks every vCPU outside the guest (running → paused). Resolves once they all are. */
  pause(): Promise<void> {
    return this.#enqueue('pause', async (native) => {
      const state = this.state;
      if (state !== 'running') throw new InvalidStateError('pause', state, ['running']);
      await callNativeAsync(() => native.pause());
    });
  }

  /** paused → running. */
  resume(): Promise<void> {
    return this.#enqueue('resume', async (native) => {
      const state = this.state;
      if (state !== 'paused') throw new InvalidStateError('resume', state, ['paused']);
      callNative(() => native.resume());
    });
  }

  /**
   * Stops the VM from any state (bounded: vCPUs are kicked out of the guest, pending I/O handlers are
   * abandoned). Resolves after the 'stopped' event. A stopped VM cannot be started again.
   */
  stop(): Promise<void> {
    return this.#enqueue('stop', async (native) => {
      await callNativeAsync(() => native.stop());
      await this.#waitStopped(STOPPED_EVENT_GRACE_MS);
    });
  }

  /**
   * Resolves true once the VM has stopped (after the 'stopped' event), or false if `timeoutMs` passed first.
   * Without a timeout it waits as long as it takes.
   */
  waitForStop(timeoutMs?: number): Promise<boolean> {
    try {
      this.nativeFor('wait for stop');
      if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0 && Number.isFinite(timeoutMs))) {
        throw new InvalidConfigError('timeoutMs', timeoutMs, 'a finite number of milliseconds >= 0, or absent');
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#waitStopped(timeoutMs);
  }

  /**
   * Stops the VM if needed and releases everything: vCPU threads, fds, guest memory. Any later use of this
   * VM throws DestroyedError (code VM_DESTROYED). Calling destroy() again returns the same promise.
   */
  destroy(): Promise<void> {
    if (this.#destroying) return this.#destroying;
    const native = this.#native;
    if (!native) return Promise.resolve();
    this.#destroying = (async () => {
      try {
        await native.destroy();
      } finally {
        this.#native = undefined;
        this.#markStopped();
      }
    })();
    return this.#destroying;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /** Sets the level of an in-kernel irqchip input (KVM_IRQ_LINE). Needs irqchip: true. */
  irqLine(gsi: number, level: boolean): void {
    const native = this.nativeFor('set an IRQ line');
    if (!isIntegerIn(gsi, 0, 0xffffffff)) throw new InvalidConfigError('gsi', gsi, 'an integer 0 .. 2^32-1');
    callNative(() => native.setIrqLine(gsi, !!level));
  }

  /** An eventfd that raises `gsi` when written (KVM_IRQFD). Needs irqchip: true. */
  irqfd(gsi: number): Irqfd {
    const native = this.nativeFor('add an irqfd');
    if (!isIntegerIn(gsi, 0, 0xffffffff)) throw new InvalidConfigError('gsi', gsi, 'an integer 0 .. 2^32-1');
    const fd = callNative(() => native.addIrqfd(gsi));
    return new Irqfd(this.#addon, (op) => void this.nativeFor(op), fd, gsi);
  }

  /** An eventfd the kernel signals on a guest write to `addr`, without an exit to user space. */
  ioeventfd(options: IoeventfdOptions): Ioeventfd {
    const native = this.nativeFor('add an ioeventfd');
    if (typeof options !== 'object' || options === null) {
      throw new InvalidConfigError('ioeventfd', options, 'an object { addr, length, space, datamatch? }');
    }
    const addr = toU64(options.addr);
    if (addr === undefined) throw new InvalidConfigError('ioeventfd.addr', options.addr, 'an integer address');
    if (![1, 2, 4, 8].includes(options.length)) {
      throw new InvalidConfigError('ioeventfd.length', options.length, '1, 2, 4 or 8');
    }
    if (options.space !== 'pio' && options.space !== 'mmio') {
      throw new InvalidConfigError('ioeventfd.space', options.space, "'pio' or 'mmio'");
    }
    if (options.space === 'pio' && addr > 0xffffn) {
      throw new InvalidConfigError('ioeventfd.addr', options.addr, 'a port number 0 .. 0xffff');
    }
    let datamatch: bigint | undefined;
    if (options.datamatch !== undefined) {
      datamatch = toU64(options.datamatch);
      if (datamatch === undefined) throw new InvalidConfigError('ioeventfd.datamatch', options.datamatch, 'an integer');
    }
    const fd = callNative(() => native.addIoeventfd(addr, options.length, options.space === 'mmio', datamatch));
    return new Ioeventfd(this.#addon, (op) => void this.nativeFor(op), fd, addr, options.space);
  }

  /** Exit counters, including accesses that hit no handler (reads of those return all ones). */
  stats(): VmStats {
    return callNative(() => this.nativeFor('read stats').stats());
  }

  // ---------------------------------------------------------------------------------------------
  // For GuestMemory and Vcpu.

  /** @internal The native VM, or DestroyedError. */
  nativeFor(operation: string): NativeVm {
    if (!this.#native || this.#destroying) throw new DestroyedError('VM', operation);
    return this.#native;
  }

  /** @internal */
  assertNotRunning(operation: string): void {
    const state = this.state;
    if (state === 'running') throw new InvalidStateError(operation, state, ['created', 'paused', 'stopped']);
  }

  // ---------------------------------------------------------------------------------------------

  #enqueue(operation: string, op: (native: NativeVm) => Promise<void>): Promise<void> {
    let native: NativeVm;
    try {
      native = this.nativeFor(operation);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.#lifecycle.then(() => {
      // Destroyed while queued behind another operation.
      if (this.#destroying) throw new DestroyedError('VM', operation);
      return op(native);
    });
    this.#lifecycle = run.catch(() => undefined);
    return run;
  }

  #waitStopped(timeoutMs: number | undefined): Promise<boolean> {
    if (this.#stoppedSeen) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.#stopWaiters.delete(done);
        resolve(true);
      };
      this.#stopWaiters.add(done);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#stopWaiters.delete(done);
          resolve(this.#stoppedSeen);
        }, timeoutMs);
      }
    });
  }

  #markStopped(): void {
    started.delete(this);
    if (this.#stoppedSeen) return;
    this.#stoppedSeen = true;
    for (const waiter of [...this.#stopWaiters]) waiter();
  }

  #onMessage(kind: 'exit' | 'state' | 'io', payload: NativeExit | NativeStateMessage | NativeIoMessage): void {
    if (kind === 'io') this.#dispatchIo(payload as NativeIoMessage);
    else if (kind === 'exit') this.#onExit(exitFromNative(payload as NativeExit));
    else this.#onState(payload as NativeStateMessage);
  }

  #onExit(exit: VmExit): void {
    if (exit.reason === 'io-error' && this.#handlerErrors.has(exit.vcpu)) {
      exit.handlerError = this.#handlerErrors.get(exit.vcpu);
    }
    this.#exits.push(exit);
    this.emit('exit', exit);
  }

  #onState(message: NativeStateMessage): void {
    // The core may report RUNNING after a fast vCPU already reported STOPPED: never go back from stopped.
    if (this.#observed === 'stopped') return;
    const state = STATE_NAMES[message.state] ?? 'stopped';
    const previous = this.#observed;
    if (state === previous) return;
    this.#observed = state;
    this.emit('stateChange', state, previous);
    if (state === 'stopped') {
      const wasSeen = this.#stoppedSeen;
      this.#markStopped();
      if (!wasSeen || this.#destroying) this.emit('stopped', [...this.#exits]);
    }
  }

  #dispatchIo(m: NativeIoMessage): void {
    const access = accessFromNative(m);
    const complete = (ok: boolean, value: bigint): void => {
      // After destroy (or a stop that abandoned this access) the completion is dropped by the binding.
      const native = this.#native;
      if (native && !this.#destroying) native.completeIo(m.vcpu, m.seq, ok, value, m.size);
    };
    const fail = (error: unknown): void => {
      this.#handlerErrors.set(m.vcpu, error);
      complete(false, 0n);
      this.emit('handlerError', { vcpu: m.vcpu, access, error });
    };
    const finish = (value: IoValue): void => {
      if (m.isWrite) return complete(true, 0n);
      let out: bigint;
      try {
        out = ioValueToU64(value, m.size);
      } catch (err) {
        return fail(err);
      }
      complete(true, out);
    };
    const handler = this.#handlers[m.handler];
    if (!handler) return fail(new Error(`no handler with id ${m.handler}`));
    let result: IoValue | Promise<IoValue>;
    try {
      result = handler(access);
    } catch (err) {
      return fail(err);
    }
    if (result && typeof (result as Promise<IoValue>).then === 'function') {
      (result as Promise<IoValue>).then(finish, fail);
    } else {
      finish(result as IoValue);
    }
  }
}
