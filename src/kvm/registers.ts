/**
 * vCPU register sets as the user sees them: general-purpose registers, segments and descriptor tables,
 * control registers. Output values are bigints; input accepts number or bigint, and any subset.
 */
import { InvalidConfigError } from '../errors';
import type { NativeDtable, NativeRegs, NativeSegment, NativeSregs } from './native';
import { toU64 } from './values';

export type U64 = number | bigint;

export const GENERAL_REGISTERS = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const;
export type GeneralRegisterName = (typeof GENERAL_REGISTERS)[number];
export type GeneralRegisters = Record<GeneralRegisterName, bigint>;

/** A segment register's hidden descriptor cache, as KVM holds it. Flags are 0 or 1. The binding
 * passes exactly this shape, so the public type is the native one. */
export type Segment = NativeSegment;
/** GDTR / IDTR. */
export type DescriptorTable = NativeDtable;

export const SEGMENT_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type SegmentName = (typeof SEGMENT_NAMES)[number];
export type Segments = Record<SegmentName, Segment> & { gdt: DescriptorTable; idt: DescriptorTable };

export const CONTROL_REGISTERS = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;
export type ControlRegisterName = (typeof CONTROL_REGISTERS)[number];
export type ControlRegisters = Record<ControlRegisterName, bigint>;

export interface Registers {
  general: GeneralRegisters;
  segments: Segments;
  control: ControlRegisters;
}

export type SegmentInput = Partial<Omit<Segment, 'base'> & { base: U64 }>;
export type DescriptorTableInput = Partial<{ base: U64; limit: number }>;
export interface RegistersInput {
  general?: Partial<Record<GeneralRegisterName, U64>>;
  segments?: Partial<Record<SegmentName, SegmentInput> & { gdt: DescriptorTableInput; idt: DescriptorTableInput }>;
  control?: Partial<Record<ControlRegisterName, U64>>;
}

function u64Field(field: string, value: unknown): bigint {
  const v = toU64(value);
  if (v === undefined) throw new InvalidConfigError(field, value, 'an integer 0 .. 2^64-1 (number or bigint)');
  return v;
}

function intField(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new InvalidConfigError(field, value, `an integer 0 .. ${max}`);
  }
  return value;
}

const SEGMENT_LIMITS: Record<Exclude<keyof Segment, 'base'>, number> = {
  limit: 0xffffffff, selector: 0xffff, type: 15, present: 1, dpl: 3, db: 1, s: 1, l: 1, g: 1, avl: 1,
};

function mergeSegment(name: string, current: NativeSegment, input: SegmentInput): NativeSegment {
  const out = { ...current };
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (key === 'base') out.base = u64Field(`segments.${name}.base`, value);
    else if (key in SEGMENT_LIMITS) {
      const k = key as keyof typeof SEGMENT_LIMITS;
      out[k] = intField(`segments.${name}.${key}`, value, SEGMENT_LIMITS[k]);
    } else throw new InvalidConfigError(`segments.${name}.${key}`, value, `no such field; known: base, ${Object.keys(SEGMENT_LIMITS).join(', ')}`);
  }
  return out;
}

function mergeDtable(name: string, current: NativeDtable, input: DescriptorTableInput): NativeDtable {
  const out = { ...current };
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (key === 'base') out.base = u64Field(`segments.${name}.base`, value);
    else if (key === 'limit') out.limit = intField(`segments.${name}.limit`, value, 0xffff);
    else throw new InvalidConfigError(`segments.${name}.${key}`, value, 'no such field; known: base, limit');
  }
  return out;
}

export function mergeGeneral(current: NativeRegs, input: NonNullable<RegistersInput['general']>): NativeRegs {
  const out = { ...current };
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (!(GENERAL_REGISTERS as readonly string[]).includes(key)) {
      throw new InvalidConfigError(`general.${key}`, value, `no such register; known: ${GENERAL_REGISTERS.join(', ')}`);
    }
    out[key as GeneralRegisterName] = u64Field(`general.${key}`, value);
  }
  return out;
}

export function mergeSpecial(
  current: NativeSregs,
  segments: RegistersInput['segments'],
  control: RegistersInput['control'],
): NativeSregs {
  const out: NativeSregs = { ...current };
  for (const [key, value] of Object.entries(segments ?? {})) {
    if (value === undefined) continue;
    if ((SEGMENT_NAMES as readonly string[]).includes(key)) {
      const name = key as SegmentName;
      out[name] = mergeSegment(name, current[name], value as SegmentInput);
    } else if (key === 'gdt' || key === 'idt') {
      out[key] = mergeDtable(key, current[key], value as DescriptorTableInput);
    } else {
      throw new InvalidConfigError(`segments.${key}`, value, `no such segment; known: ${SEGMENT_NAMES.join(', ')}, gdt, idt`);
    }
  }
  for (const [key, value] of Object.entries(control ?? {})) {
    if (value === undefined) continue;
    if (!(CONTROL_REGISTERS as readonly string[]).includes(key)) {
      throw new InvalidConfigError(`control.${key}`, value, `no such register; known: ${CONTROL_REGISTERS.join(', ')}`);
    }
    out[key as ControlRegisterName] = u64Field(`control.${key}`, value);
  }
  return out;
}

export function registersFromNative(regs: NativeRegs, sregs: NativeSregs): Registers {
  const { cr0, cr2, cr3, cr4, cr8, efer, apicBase, ...segments } = sregs;
  return { general: { ...regs }, segments, control: { cr0, cr2, cr3, cr4, cr8, efer, apicBase } };
}
