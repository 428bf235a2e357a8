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

/**
 * A runner's name as the report shows it. gVisor figures depend heavily on its build and platform, and
 * the only one that works here is old and slow, so every mention of runsc carries both.
 */
export function runnerLabel(id: string, name: string, versions: Record<string, string | null> = {}): string {
  if (name !== 'runsc') return id;
  const build = /(\d{8})/.exec(versions[id] ?? '')?.[1];
  return `${id} (gVisor: Debian's ${build ? `${build.slice(0, 4)}-${build.slice(4, 6)}-${build.slice(6)}` : '2022'} runsc build, platform ptrace only)`;
}

export const GROUP_TITLES: Record<string, string> = { cpu: 'CPU', memory: 'memory', syscall: 'syscalls' };
