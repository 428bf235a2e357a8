/** The hypervisor: an open /dev/kvm, what it can do, and the VMs made from it. */
import { KvmUnavailableError } from '../errors';
import { validateVmConfig, type VmConfig } from './config';
import { isNativeError, kvmUnavailableReason, translateNativeError } from './errors';
import { loadNative, type NativeAddon, type NativeKvm } from './native';
import { Vm } from './vm';

export interface KvmCapability {
  /** e.g. "KVM_CAP_IRQFD" */
  name: string;
  id: number;
  /** 0 when absent, else the capability's value (often 1, sometimes a count). */
  value: number;
}

export interface OpenHypervisorOptions {
  /** Device path (default /dev/kvm). */
  path?: string;
}

/** bulkhead never creates more vCPUs per VM than this, whatever the host allows. */
export const MAX_VCPUS_PER_VM = 256;

export class Kvm {
  readonly apiVersion: number;
  /** vCPUs one VM may have here: KVM_CAP_MAX_VCPUS, at most MAX_VCPUS_PER_VM. */
  readonly maxVcpus: number;
  /** Every capability bulkhead knows by name, with its value on this host. */
  readonly capabilities: readonly KvmCapability[];
  readonly #native: NativeKvm;
  readonly #addon: NativeAddon;
  #closed = false;

  /** @internal Use openHypervisor(). */
  constructor(addon: NativeAddon, native: NativeKvm) {
    this.#addon = addon;
    this.#native = native;
    this.apiVersion = native.apiVersion();
    this.maxVcpus = Math.min(native.maxVcpus(), MAX_VCPUS_PER_VM);
    this.capabilities = Object.freeze(native.capabilities().map((c) => Object.freeze({ ...c })));
  }

  /** The value of a known capability by name (0 if absent or unknown). */
  capability(name: string): number {
    return this.capabilities.find((c) => c.name === name)?.value ?? 0;
  }

  /** KVM_CHECK_EXTENSION for any capability number. */
  checkExtension(id: number): number {
    this.#assertOpen();
    return this.#native.checkExtension(id);
  }

  /** Creates a VM (state 'created'). Every config field is validated first (InvalidConfigError). */
  createVm(config: VmConfig): Vm {
    this.#assertOpen();
    const validated = validateVmConfig(config, this.maxVcpus);
    return new Vm(this.#addon, this.#native, validated);
  }

  /** @internal The addon and the native handle, for the other primitives built on this one (machine.ts). */
  nativeParts(operation: string): { addon: NativeAddon; native: NativeKvm } {
    if (this.#closed) throw new KvmUnavailableError('open-failed', `cannot ${operation}: this hypervisor handle has been closed`);
    return { addon: this.#addon, native: this.#native };
  }

  /** Closes this handle. VMs already created keep working; /dev/kvm is closed after the last is destroyed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvmUnavailableError('open-failed', 'this hypervisor handle has been closed');
  }
}

/**
 * Opens /dev/kvm. Throws KvmUnavailableError (reason 'missing', 'permission', 'api-version' or
 * 'open-failed') when it cannot be used, or BulkheadError NATIVE_ADDON_UNAVAILABLE.
 */
export function openHypervisor(options: OpenHypervisorOptions = {}): Kvm {
  const addon = loadNative();
  const path = options.path ?? '/dev/kvm';
  let native: NativeKvm;
  try {
    native = new addon.Kvm(path);
  } catch (err) {
    if (isNativeError(err) && err.bhStatus === 'BH_E_UNAVAILABLE') {
      const reason = kvmUnavailableReason(err.errno ?? 0);
      const hint =
        reason === 'missing'
          ? 'load the kvm module (kvm_intel, kvm_amd or kvm_pvm) or run on a host that exposes /dev/kvm'
          : reason === 'permission'
            ? `add this user to the group owning ${path} (often "kvm") or adjust its permissions`
            : 'this kernel speaks an unexpected KVM API';
      throw new KvmUnavailableError(reason, `${err.coreMessage ?? err.message} (${hint})`, { cause: err });
    }
    throw translateNativeError(err);
  }
  return new Kvm(addon, native);
}

let shared: Kvm | undefined;

/** The process-wide /dev/kvm handle createVm() and createMachine() use (opened on first use). */
export function sharedHypervisor(): Kvm {
  shared ??= openHypervisor();
  return shared;
}

/** Creates a VM on a process-wide /dev/kvm handle (opened on first use). */
export function createVm(config: VmConfig): Vm {
  return sharedHypervisor().createVm(config);
}
