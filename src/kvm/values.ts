/** Small checks for the integer arguments the kvm API accepts as number or bigint. */

/** A non-negative integer given as a number (safe integer) or a bigint below 2^64, as a bigint; else undefined. */
export function toU64(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value >= 0n && value < 1n << 64n ? value : undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  return undefined;
}

export function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}
