import { createMachine, type MachineExit } from '../kvm/machine';

/**
 * The zone's VM, as the zone needs it: kernel + initramfs (the agent) + command line, a read-only
 * root disk holding the image's erofs, vsock for the agent, a console into the zone's log, and an
 * end that says how it ended. Built on the machine builder of src/kvm (createMachine).
 */
export interface ZoneMachineSpec {
  kernel: string;
  initrd: Buffer;
  cmdline: string;
  memoryMiB: number;
  vcpus: number;
  /** The image's erofs, attached read-only as /dev/vda. */
  rootDisk: string;
  /** The VMM's vsock Unix socket (Firecracker's scheme). */
  vsockSocket: string;
  onConsole: (bytes: Buffer) => void;
  onVmmEvent: (text: string) => void;
  /** A boot marker the guest wrote, with its time since the VM was created. */
  onBootMarker?: (marker: number, sinceCreateMs: number) => void;
}

export interface ZoneMachineEnd {
  kind: 'power-off' | 'reboot' | 'panic' | 'crash' | 'stopped' | 'device-failure' | 'error';
  detail: string;
  consoleTail?: string;
}

export interface ZoneMachine {
  readonly ended: Promise<ZoneMachineEnd>;
  stats(): { exits?: number; vcpuTimeMs?: number; rssBytes?: number; guestResidentBytes?: number };
  /** Forces the VM off (the end then says 'stopped'). */
  stop(): Promise<void>;
  /** Stops it if needed and frees everything: threads, fds, guest memory, sockets. */
  destroy(): Promise<void>;
}

/** The guest vsock CID every zone gets (each zone has its own VMM and vsock device). */
export const ZONE_GUEST_CID = 3;

/**
 * The kernel command line of a zone. The machine builder puts `reboot=k,panic_warm panic=-1` in
 * front (how it tells a panic from a reboot) and the virtio-mmio devices behind.
 */
export function zoneCommandLine(hostname: string): string {
  return ['console=hvc0', 'quiet', 'bulkhead.root=/dev/vda', 'bulkhead.rootfstype=erofs', `bulkhead.hostname=${hostname}`].join(' ');
}

/** The zone's VM in this process, through the C machine builder (src/kvm createMachine). */
export async function startZoneMachine(spec: ZoneMachineSpec): Promise<ZoneMachine> {
  const machine = createMachine({
    kernel: spec.kernel,
    initrd: spec.initrd,
    cmdline: spec.cmdline,
    memoryMiB: spec.memoryMiB,
    vcpus: spec.vcpus,
    disks: [{ path: spec.rootDisk, readOnly: true, serial: 'rootfs' }],
    console: true,
    rng: true,
    vsock: { udsPath: spec.vsockSocket, guestCid: ZONE_GUEST_CID },
  });
  machine.on('console', (bytes) => spec.onConsole(bytes));
  machine.on('bootMarker', (m) => {
    spec.onVmmEvent(`boot marker ${m.marker} from the guest ${m.sinceCreateMs.toFixed(0)} ms after VM creation`);
    spec.onBootMarker?.(m.marker, m.sinceCreateMs);
  });
  machine.on('deviceBroken', (d) => spec.onVmmEvent(`device ${d.device} marked broken: ${d.reason}`));
  let stopping = false;
  const ended = new Promise<ZoneMachineEnd>((resolve) => {
    machine.once('end', (exit) => resolve(zoneEnd(exit, stopping)));
  });
  machine.start();
  return {
    ended,
    stats: () => {
      const s = machine.stats();
      return { exits: s.exits, vcpuTimeMs: Math.round(s.vcpuCpuMs.reduce((a, b) => a + b, 0)), guestResidentBytes: s.guestResidentBytes };
    },
    stop: async () => {
      stopping = true;
      if (machine.state === 'running') await machine.stop();
      await ended;
    },
    destroy: async () => {
      stopping = true;
      await machine.destroy();
    },
  };
}

function zoneEnd(exit: MachineExit, stopping: boolean): ZoneMachineEnd {
  const detail = exit.message;
  switch (exit.kind) {
    case 'power-off':
      return { kind: 'power-off', detail };
    case 'reboot':
      return { kind: 'reboot', detail };
    case 'panic':
      return { kind: 'panic', detail, consoleTail: exit.consoleTail };
    case 'device-failure':
      return { kind: 'device-failure', detail: `${exit.device ?? 'a device'}: ${detail}`, consoleTail: exit.consoleTail };
    case 'stopped':
      return { kind: 'stopped', detail };
    default:
      // a triple fault or a failed VM; after we asked it to stop, it is just stopped
      return stopping ? { kind: 'stopped', detail } : { kind: 'crash', detail, consoleTail: exit.consoleTail };
  }
}
