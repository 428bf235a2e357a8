/** `bulkhead ps [-a] [--json]`: the zones on this host (or on BULKHEAD_SERVER), newest first. */
import type { ZoneInfo } from '../zone/types';
import { defineCommand } from './args';
import { zoneSource } from './zone-common';

const LIVE = new Set(['creating', 'booting', 'running', 'stopping']);

export const command = defineCommand({
  name: 'ps',
  summary: 'list zones (running ones; -a: all)',
  options: {
    all: { type: 'boolean', short: 'a', description: 'also zones that have exited or failed' },
    json: { type: 'boolean', description: 'print a JSON array of zone records' },
  },
  async run({ values }) {
    const source = await zoneSource();
    let zones: ZoneInfo[];
    try {
      zones = (await source.list()).filter((z) => values.all || LIVE.has(z.state));
    } finally {
      source.close();
    }
    if (values.json) {
      process.stdout.write(JSON.stringify(zones, null, 2) + '\n');
      return 0;
    }
    const rows = [
      ['ZONE ID', 'NAME', 'IMAGE', 'STATE', 'BACKEND', 'MEMORY', 'CPUS', 'CREATED'],
      ...zones.map((z) => [z.id, z.name, z.image, z.state, z.backend, `${z.memoryMiB}m`, String(z.vcpus), ago(z.createdAt)]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('').trimEnd() + '\n');
    return 0;
  },
});

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}
