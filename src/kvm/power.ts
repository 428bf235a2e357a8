/**
 * How a guest ends itself, and telling the ways apart.
 *
 *  - power-off: Linux without ACPI has no power-off device; `poweroff` ends with every vCPU halted with
 *    interrupts off. watchPowerOff() looks for that state (pausing the VM briefly, every intervalMs) and stops
 *    the VM; its exits then say 'guest-request' "power-off: ...".
 *  - reset: the i8042's reset line (Linux `reboot=k`): addI8042(); exits say 'guest-request' "reset".
 *  - shutdown: a triple fault (Linux `reboot=t`, or a crashed guest): exit reason 'shutdown'.
 *  - debug-exit: a hand-made guest wrote to a debug-exit port (addDebugExit()).
 * classifyEnd() turns a VM's exits into one of these words.
 */
import { callNative, translateNativeError } from './errors';
import { GUEST_REQUEST, type VmExit } from './exits';
import { linuxNative } from './linux';
import type { NativeVm } from './native';
import { InvalidConfigError } from '../errors';
import { isIntegerIn } from './values';
import { Vm } from './vm';

/** The PC keyboard controller at ports 0x60/0x64: just enough for Linux, and its reset line. */
export class I8042 {
  readonly #native: NativeVm;
  readonly #id: number;

  /** @internal Use vm.addI8042(). */
  constructor(vm: Vm) {
    this.#native = vm.nativeFor('add an i8042');
    this.#id = callNative(() => linuxNative().i8042Create(this.#native));
  }

  /** How many resets the guest requested (the first one stops the VM). */
  get resets(): number {
    return callNative(() => linuxNative().i8042Resets(this.#native, this.#id));
  }
}

/** A one-port "debug exit" for hand-made guests: a byte written there stops the VM. */
export class DebugExit {
  readonly port: number;
  readonly #native: NativeVm;
  readonly #id: number;

  /** @internal Use vm.addDebugExit(port). */
  constructor(vm: Vm, port: number) {
    if (!isIntegerIn(port, 0, 0xffff)) throw new InvalidConfigError('debugExit.port', port, 'an integer port 0 .. 0xffff');
    this.port = port;
    this.#native = vm.nativeFor('add a debug-exit port');
    this.#id = callNative(() => linuxNative().debugExitCreate(this.#native, port));
  }

  /** The last byte the guest wrote, or undefined if none yet. */
  get value(): number | undefined {
    const v = callNative(() => linuxNative().debugExitValue(this.#native, this.#id));
    return v < 0 ? undefined : v;
  }
}

export interface PowerOffWatch {
  /** Resolves true once a power-off was detected (the VM is then stopped), false if the VM stopped otherwise or the watch was cancelled. */
  readonly done: Promise<boolean>;
  /** Stops watching. */
  cancel(): void;
}

/**
 * Watches a VM for a guest power-off (every vCPU halted with interrupts off) and stops the VM when it
 * happens. Each check pauses the VM for a moment (the vCPUs must be out of the guest to be inspected), so
 * 'stateChange' events show paused/running pairs. Checks only while the VM is running (a VM the user paused
 * is left alone). Does not keep the process alive by itself.
 */
export function watchPowerOff(vm: Vm, options: { intervalMs?: number } = {}): PowerOffWatch {
  const intervalMs = options.intervalMs ?? 300;
  if (!isIntegerIn(intervalMs, 10, 3_600_000)) {
    throw new InvalidConfigError('intervalMs', intervalMs, 'an integer number of milliseconds 10 .. 3600000');
  }
  const native = vm.nativeFor('watch for power-off');
  let finished = false;
  let checking = false;
  let stoppedSeen = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveDone!: (v: boolean) => void;
  const done = new Promise<boolean>((r) => (resolveDone = r));
  const finish = (detected: boolean): void => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    vm.off('stopped', onStopped);
    resolveDone(detected);
  };
  // A check that finds the guest halted stops the VM itself: its 'stopped' may arrive before the check's
  // answer, so while a check is out, the answer decides.
  const onStopped = (): void => {
    stoppedSeen = true;
    if (!checking) finish(false);
  };
  const schedule = (): void => {
    if (finished) return;
    timer = setTimeout(() => void tick(), intervalMs);
    timer.unref();
  };
  const tick = async (): Promise<void> => {
    if (finished) return;
    let state: string;
    try {
      state = vm.state;
    } catch {
      return finish(false);
    }
    if (state === 'stopped' || state === 'destroyed') return finish(false);
    if (state === 'running') {
      checking = true;
      let halted = false;
      try {
        halted = await linuxNative().guestHalted(native);
      } catch (err) {
        const e = translateNativeError(err) as { code?: string };
        if (e.code === 'INVALID_STATE' || e.code === 'VM_DESTROYED') stoppedSeen = true;
        // Anything else is unexpected, but must not crash the caller's process: keep watching.
      }
      // When halted, `checking` stays set: the 'stopped' that follows must not end the watch as "not detected".
      if (!halted) checking = false;
      if (halted) {
        // Resolve once the VM's exits (which say "power-off") have all been delivered.
        await vm.waitForStop().catch(() => undefined);
        return finish(true);
      }
      if (stoppedSeen) return finish(false);
    }
    schedule();
  };
  vm.on('stopped', onStopped);
  schedule();
  return { done, cancel: () => finish(false) };
}

export type GuestEndReason = 'power-off' | 'reset' | 'shutdown' | 'debug-exit' | 'crash' | 'stopped';

/** What a VM's exits say about how it ended. */
export function classifyEnd(exits: readonly VmExit[]): { reason: GuestEndReason; detail: string } {
  // The cause is the first exit that is not a plain stop (the other vCPUs then report 'stopped').
  const cause = exits.find((e) => e.reason !== 'stopped');
  if (!cause) return { reason: 'stopped', detail: exits[0]?.message ?? 'no vCPU exit was reported' };
  switch (cause.reason) {
    case 'guest-request':
      // The code in details[0] says what the guest asked for; the message is only for people.
      switch (cause.details[0]) {
        case GUEST_REQUEST.resetLine:
          return { reason: 'reset', detail: 'i8042 reset line' };
        case GUEST_REQUEST.reboot:
          return { reason: 'reset', detail: cause.message };
        case GUEST_REQUEST.powerOff:
          return { reason: 'power-off', detail: cause.message };
        case GUEST_REQUEST.debugExit:
          return { reason: 'debug-exit', detail: cause.message };
        default:
          return { reason: 'stopped', detail: cause.message };
      }
    case 'shutdown':
      return { reason: 'shutdown', detail: `triple fault: ${cause.message}` };
    case 'system-event': {
      const type = cause.details[0];
      if (type === 1n) return { reason: 'power-off', detail: 'KVM_SYSTEM_EVENT_SHUTDOWN' };
      if (type === 2n) return { reason: 'reset', detail: 'KVM_SYSTEM_EVENT_RESET' };
      return { reason: 'crash', detail: cause.message };
    }
    case 'hlt':
      // Without an in-kernel irqchip HLT ends the vCPU: the guest halted for good.
      return { reason: 'power-off', detail: cause.message };
    default:
      return { reason: 'crash', detail: cause.message };
  }
}

declare module './vm' {
  interface Vm {
    /** Adds the i8042 keyboard controller (ports 0x60/0x64); its reset line stops the VM ('reset'). */
    addI8042(): I8042;
    /** Adds a debug-exit port: a byte written there stops the VM ('debug-exit'). */
    addDebugExit(port: number): DebugExit;
    /** Stops the VM when the guest powers itself off. See watchPowerOff(). */
    watchPowerOff(options?: { intervalMs?: number }): PowerOffWatch;
  }
}

Vm.prototype.addI8042 = function addI8042(this: Vm): I8042 {
  return new I8042(this);
};
Vm.prototype.addDebugExit = function addDebugExit(this: Vm, port: number): DebugExit {
  return new DebugExit(this, port);
};
Vm.prototype.watchPowerOff = function watchPowerOffMethod(this: Vm, options?: { intervalMs?: number }): PowerOffWatch {
  return watchPowerOff(this, options);
};
