/**
 * The VM configuration and its validation. Every field is checked here, before the addon sees it, and a
 * bad one throws InvalidConfigError naming the field, the value and what is allowed.
 */
import * as fs from 'node:fs';
import { InvalidConfigError } from '../errors';
import { isIntegerIn } from './values';

export interface VmConfig {
  /** Guest RAM in MiB: 1 .. the host's MemTotal. RAM sits at GPA 0 up to 3 GiB, the rest above 4 GiB. */
  memoryMiB: number;
  /** Number of vCPUs: 1 .. the hypervisor's maximum (KVM_CAP_MAX_VCPUS, at most 256). */
  vcpus: number;
  /**
   * In-kernel IOAPIC/PIC/LAPIC and PIT (default false). With it, HLT waits for an interrupt inside KVM
   * instead of ending the vCPU's run with an 'hlt' exit.
   */
  irqchip?: boolean;
}

export interface ValidatedVmConfig {
  memoryMiB: number;
  memoryBytes: bigint;
  vcpus: number;
  irqchip: boolean;
}

const KNOWN_FIELDS = ['memoryMiB', 'vcpus', 'irqchip'] as const;

/** The host's RAM in whole MiB (MemTotal from /proc/meminfo): the most one VM may be given. */
export function hostMemoryMiB(): number {
  try {
    const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
    const match = /^MemTotal:\s+(\d+)\s+kB$/m.exec(meminfo);
    if (match?.[1]) return Math.floor(Number(match[1]) / 1024);
  } catch {
    // fall through
  }
  return 1024; // /proc unreadable: a conservative documented cap of 1 GiB
}

export function validateVmConfig(config: unknown, maxVcpus: number): ValidatedVmConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new InvalidConfigError('config', config, 'an object { memoryMiB, vcpus, irqchip? }');
  }
  const c = config as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      throw new InvalidConfigError(key, c[key], `no such field; known fields: ${KNOWN_FIELDS.join(', ')}`);
    }
  }
  const maxMiB = hostMemoryMiB();
  if (!isIntegerIn(c.memoryMiB, 1, maxMiB)) {
    throw new InvalidConfigError('memoryMiB', c.memoryMiB, `an integer from 1 to ${maxMiB} (the host's MemTotal in MiB)`);
  }
  if (!isIntegerIn(c.vcpus, 1, maxVcpus)) {
    throw new InvalidConfigError('vcpus', c.vcpus, `an integer from 1 to ${maxVcpus} (this hypervisor's maximum)`);
  }
  if (c.irqchip !== undefined && typeof c.irqchip !== 'boolean') {
    throw new InvalidConfigError('irqchip', c.irqchip, 'true, false or absent (default false)');
  }
  return {
    memoryMiB: c.memoryMiB,
    memoryBytes: BigInt(c.memoryMiB) * 1024n * 1024n,
    vcpus: c.vcpus,
    irqchip: c.irqchip ?? false,
  };
}
