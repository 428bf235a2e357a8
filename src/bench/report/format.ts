/** Number formatting shared by the markdown report and the chart: 3 significant digits, no exponents. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 1000) return Math.round(v).toLocaleString('en-US');
  if (abs >= 100) return v.toFixed(0);
  if (abs >= 10) return v.toFixed(1);
  if (abs >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function formatRatio(r: number): string {
  return `${r >= 100 ? Math.round(r).toLocaleString('en-US') : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

export const GROUP_TITLES: Record<string, string> = { cpu: 'CPU', memory: 'memory', syscall: 'syscalls' };
