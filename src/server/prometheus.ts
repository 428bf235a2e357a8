/**
 * GET /metrics: every served zone's host-side and guest-side figures (zone.metrics()) in the
 * Prometheus text format, through prom-client. Each scrape asks every zone once, in parallel, and
 * builds a fresh registry, so a destroyed zone's series disappear with it. A zone that does not
 * answer within METRICS_TIMEOUT_MS has bulkhead_zone_metrics_up 0 and only its static figures.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Zone } from '../zone/zone';
import type { ZoneMetrics } from '../zone/types';
import { ZONE_STATES } from '../zone/types';

const METRICS_TIMEOUT_MS = 5_000;
const LABELS = ['zone_id', 'zone_name'] as const;

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export async function prometheusText(zones: readonly Zone[]): Promise<string> {
  const registry = new Registry();
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: readonly string[] = LABELS) => new Gauge({ name, help, labelNames, registers });
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: LABELS, registers });

  const byState = gauge('bulkhead_zones', 'zones served, by state', ['state']);
  const info = gauge('bulkhead_zone_info', 'one per zone, its attributes as labels', [...LABELS, 'image', 'backend', 'state']);
  const up = gauge('bulkhead_zone_metrics_up', '1 when the zone answered metrics() for this scrape');
  const memoryLimit = gauge('bulkhead_zone_memory_limit_bytes', 'guest RAM given to the zone');
  const vcpus = gauge('bulkhead_zone_vcpus', 'vCPUs given to the zone');
  const hostRss = gauge('bulkhead_zone_host_rss_bytes', "the VMM's resident memory attributable to the zone");
  const guestResident = gauge('bulkhead_zone_guest_resident_bytes', 'guest RAM the host holds for the zone (pages allocated to its memory file)');
  const vcpuSeconds = counter('bulkhead_zone_host_vcpu_seconds_total', 'vCPU time the zone used, seen from the host');
  const exits = counter('bulkhead_zone_host_exits_total', 'VM exits of the zone');
  const memTotal = gauge('bulkhead_zone_guest_memory_total_bytes', "the guest's MemTotal");
  const memAvailable = gauge('bulkhead_zone_guest_memory_available_bytes', "the guest's MemAvailable");
  const memUsed = gauge('bulkhead_zone_guest_memory_used_bytes', 'guest memory in use');
  const psiSome = gauge('bulkhead_zone_guest_memory_pressure_some_ratio', 'guest memory PSI some avg10, as a ratio');
  const psiFull = gauge('bulkhead_zone_guest_memory_pressure_full_ratio', 'guest memory PSI full avg10, as a ratio');
  const cpus = gauge('bulkhead_zone_guest_cpus', 'CPUs the guest sees');
  const busy = gauge('bulkhead_zone_guest_cpu_busy_ratio', 'guest CPU busy, as a ratio of all its CPUs');
  const load1 = gauge('bulkhead_zone_guest_load1', "the guest's 1-minute load average");
  const uptime = gauge('bulkhead_zone_guest_uptime_seconds', 'guest uptime');
  const processes = gauge('bulkhead_zone_guest_processes', 'processes running in the guest');

  for (const state of ZONE_STATES) byState.set({ state }, zones.filter((z) => z.state === state).length);
  const figures = await Promise.all(zones.map((z) => metricsOf(z)));
  zones.forEach((zone, i) => {
    const labels = { zone_id: zone.id, zone_name: zone.name };
    info.set({ ...labels, image: zone.image, backend: zone.backend, state: zone.state }, 1);
    memoryLimit.set(labels, zone.memoryMiB * 1024 * 1024);
    vcpus.set(labels, zone.vcpus);
    const m = figures[i];
    up.set(labels, m ? 1 : 0);
    if (!m) return;
    if (m.host.rssBytes !== undefined) hostRss.set(labels, m.host.rssBytes);
    if (m.host.guestResidentBytes !== undefined) guestResident.set(labels, m.host.guestResidentBytes);
    if (m.host.vcpuTimeMs !== undefined) vcpuSeconds.inc(labels, m.host.vcpuTimeMs / 1000);
    if (m.host.exits !== undefined) exits.inc(labels, m.host.exits);
    const g = m.guest;
    if (!g) return;
    memTotal.set(labels, g.memory.totalBytes);
    memAvailable.set(labels, g.memory.availableBytes);
    memUsed.set(labels, g.memory.usedBytes);
    if (g.memory.pressure) {
      psiSome.set(labels, g.memory.pressure.some10 / 100);
      psiFull.set(labels, g.memory.pressure.full10 / 100);
    }
    cpus.set(labels, g.cpu.count);
    busy.set(labels, g.cpu.busyPercent / 100);
    load1.set(labels, g.cpu.loadAverage[0]);
    uptime.set(labels, g.uptimeMs / 1000);
    processes.set(labels, g.processes.length);
  });
  return registry.metrics();
}

/** The zone's figures, or undefined when it has ended or does not answer in time. */
async function metricsOf(zone: Zone): Promise<ZoneMetrics | undefined> {
  if (zone.state !== 'running') return undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      zone.metrics(),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), METRICS_TIMEOUT_MS))),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
