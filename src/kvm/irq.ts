/** Interrupt plumbing: IRQ lines of the in-kernel irqchip, irqfds and ioeventfds (all owned by the VM). */
import { callNative } from './errors';
import type { NativeAddon } from './native';

/** An eventfd wired to a GSI: trigger() raises the interrupt without a round trip through the VMM. */
export class Irqfd {
  constructor(
    private readonly addon: NativeAddon,
    private readonly check: (operation: string) => void,
    readonly fd: number,
    readonly gsi: number,
  ) {}

  trigger(): void {
    this.check('trigger an irqfd');
    callNative(() => this.addon.eventfdWrite(this.fd, 1n));
  }
}

/** An eventfd the kernel signals when the guest writes to an address: no exit reaches user space. */
export class Ioeventfd {
  constructor(
    private readonly addon: NativeAddon,
    private readonly check: (operation: string) => void,
    readonly fd: number,
    readonly addr: bigint,
    readonly space: 'pio' | 'mmio',
  ) {}

  /** How many matching writes happened since the last call (0n if none). Never blocks. */
  take(): bigint {
    this.check('read an ioeventfd');
    return callNative(() => this.addon.eventfdTryRead(this.fd));
  }
}
