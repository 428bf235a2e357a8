/** `bulkhead top ZONE`: the zone's processes and its memory and CPU, from the agent and the VMM. */
import { defineCommand } from './args';
import { detach, zoneSource } from './zone-common';

const MiB = 1024 * 1024;

export const command = defineCommand({
  name: 'top',
  summary: "a zone's processes, memory and CPU",
  args: 'ZONE',
  options: { json: { type: 'boolean', description: 'print the metrics as JSON' } },
  positionals: { min: 1, max: 1 },
  async run({ values, positionals }) {
    const source = await zoneSource();
    try {
      const zone = await source.attach(positionals[0]!);
      try {
        const m = await zone.metrics();
        if (values.json) {
          process.stdout.write(JSON.stringify(m, null, 2) + '\n');
          return 0;
        }
        const host = [
          m.host.rssBytes !== undefined ? `VMM RSS ${(m.host.rssBytes / MiB).toFixed(1)} MiB` : undefined,
          m.host.vcpuTimeMs !== undefined ? `vCPU time ${(m.host.vcpuTimeMs / 1000).toFixed(1)} s` : undefined,
          m.host.exits !== undefined ? `exits ${m.host.exits}` : undefined,
        ].filter(Boolean);
        process.stdout.write(`zone ${zone.name} (${zone.id}): ${host.join(', ') || 'no host figures'}\n`);
        const g = m.guest;
        if (!g) {
          process.stdout.write('no guest figures (the agent did not report)\n');
          return 0;
        }
        const psi = g.memory.pressure ? `, pressure some ${g.memory.pressure.some10}% full ${g.memory.pressure.full10}%` : '';
        process.stdout.write(
          `memory ${(g.memory.usedBytes / MiB).toFixed(1)} of ${(g.memory.totalBytes / MiB).toFixed(1)} MiB used${psi}; ` +
            `cpu ${g.cpu.busyPercent.toFixed(1)}% of ${g.cpu.count}, load ${g.cpu.loadAverage.map((l) => l.toFixed(2)).join(' ')}; up ${(g.uptimeMs / 1000).toFixed(0)} s\n`,
        );
        const rows = [['PID', 'USER', 'RSS', '%CPU', 'STATE', 'COMMAND'], ...g.processes.map((p) => [String(p.pid), p.user, `${(p.rssBytes / 1024).toFixed(0)}k`, p.cpuPercent.toFixed(1), p.state, p.command])];
        const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
        for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('') + '\n');
        return 0;
      } finally {
        detach(zone);
      }
    } finally {
      source.close();
    }
  },
});
