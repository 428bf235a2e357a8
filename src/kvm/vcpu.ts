/** One virtual CPU of a Vm: its registers (set before start, read while not running). */
import { InvalidConfigError } from '../errors';
import { callNative } from './errors';
import type { NativeVm } from './native';
import { mergeGeneral, mergeSpecial, registersFromNative, type Registers, type RegistersInput } from './registers';

/** What a Vcpu needs from its Vm: the native handle, checked for use-after-destroy and state. */
export interface VcpuOwner {
  nativeFor(operation: string): NativeVm;
  assertNotRunning(operation: string): void;
}

export class Vcpu {
  constructor(
    private readonly owner: VcpuOwner,
    readonly index: number,
  ) {}

  /** All registers. Not while the VM runs (pause it first). */
  getRegisters(): Registers {
    const native = this.owner.nativeFor('get registers');
    this.owner.assertNotRunning('get registers');
    return callNative(() => registersFromNative(native.getRegs(this.index), native.getSregs(this.index)));
  }

  /**
   * Sets any subset of registers; the rest keep their values. Not while the VM runs.
   * Example (64-bit code at CPL3): `{ general: { rip: 0x1000, rflags: 2 }, segments: { cs: { l: 1, dpl: 3 } } }`.
   */
  setRegisters(input: RegistersInput): void {
    const native = this.owner.nativeFor('set registers');
    this.owner.assertNotRunning('set registers');
    if (typeof input !== 'object' || input === null) {
      throw new InvalidConfigError('registers', input, 'an object { general?, segments?, control? }');
    }
    for (const key of Object.keys(input)) {
      if (key !== 'general' && key !== 'segments' && key !== 'control') {
        throw new InvalidConfigError(key, (input as Record<string, unknown>)[key], 'one of general, segments, control');
      }
    }
    // Validate everything before changing anything.
    const general = input.general ? mergeGeneral(callNative(() => native.getRegs(this.index)), input.general) : undefined;
    const special =
      input.segments || input.control
        ? mergeSpecial(callNative(() => native.getSregs(this.index)), input.segments, input.control)
        : undefined;
    if (special) callNative(() => native.setSregs(this.index, special));
    if (general) callNative(() => native.setRegs(this.index, general));
  }

  /** The KVM vCPU fd, for ioctls this API does not wrap. Owned by the VM. */
  get fd(): number {
    const native = this.owner.nativeFor('get the vCPU fd');
    return callNative(() => native.vcpuFd(this.index));
  }
}
