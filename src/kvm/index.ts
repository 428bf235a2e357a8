/**
 * bulkhead/kvm: the typed primitives over /dev/kvm.
 *
 *   const kvm = openHypervisor();                       // capabilities, maxVcpus
 *   await using vm = kvm.createVm({ memoryMiB: 16, vcpus: 1 });
 *   vm.memory.write(0x1000, code);
 *   vm.vcpu(0).setRegisters({ general: { rip: 0x1000 }, segments: { cs: { base: 0, selector: 0 } } });
 *   vm.onPort(0x10, 1, (a) => (a.isWrite ? console.log(a.data) : 42));
 *   vm.start();
 *   await vm.waitForStop(1000);
 */
export { Kvm, openHypervisor, createVm, sharedHypervisor, MAX_VCPUS_PER_VM } from './hypervisor';
export type { KvmCapability, OpenHypervisorOptions } from './hypervisor';
export { Vm } from './vm';
export type { VmState, VmEvents, VmStats, IoeventfdOptions } from './vm';
export type { VmConfig } from './config';
export { hostMemoryMiB } from './config';
export { Vcpu } from './vcpu';
export type {
  Registers,
  RegistersInput,
  GeneralRegisters,
  Segments,
  Segment,
  DescriptorTable,
  ControlRegisters,
} from './registers';
export { GuestMemory } from './memory';
export type { MemoryRegion } from './memory';
export type { IoAccess, IoHandler, IoValue } from './io';
export type { VmExit, ExitReason } from './exits';
export { GUEST_REQUEST } from './exits';
export { Irqfd, Ioeventfd } from './irq';
export { GuestMemoryOutOfRangeError } from './errors';
// Linux boot and legacy devices. These modules also add vm.loadLinux(), vm.addSerialConsole(), vm.addI8042(),
// vm.addDebugExit() and vm.watchPowerOff() to Vm.
export { loadLinux, checkKernelImage, KernelInvalidError } from './linux';
export type { LoadLinuxOptions, LinuxBootInfo, KernelImageInfo, LinuxEntry } from './linux';
export { SerialConsole, addSerialConsole } from './serial';
export type { SerialConsoleOptions, SerialConsoleEvents } from './serial';
export { I8042, DebugExit, watchPowerOff, classifyEnd } from './power';
export type { PowerOffWatch, GuestEndReason } from './power';
export { bootLinux, lastLines, tailWithPanic, PANIC_MARKER, DEFAULT_LINUX_CMDLINE } from './boot-linux';
export type { BootLinuxOptions, BootLinuxResult, BootLinuxReason } from './boot-linux';
// The machine builder: a Linux guest with its disks, console, rng, vsock and power device in one call.
export { Machine, createMachine } from './machine';
export type {
  MachineSpec,
  MachineDisk,
  MachineVsock,
  MachineExit,
  MachineEndKind,
  MachineEvents,
  MachineStats,
  MachineDeviceStats,
  MachineBootMarker,
  MachineDeviceBroken,
  MachineState,
} from './machine';
