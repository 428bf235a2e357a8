/**
 * `bulkhead __supervise`: the small process that owns a detached zone (`bulkhead run -d`), as a
 * containerd shim owns a container. `run -d` starts it in a session of its own with its output in
 * a log file; it creates the zone (whose api.sock lets other shells reach it), reports the zone id
 * (or the error) on fd 3, and then lives as long as the zone: until `bulkhead rm` destroys it, or,
 * with --rm, until the zone exits. SIGTERM/SIGINT destroy the zone and end it.
 */
import { writeSync, closeSync } from 'node:fs';
import { errorToWire } from '../server/wire';
import type { ZoneSpec } from '../zone/spec';
import { Zone } from '../zone/zone';
import { defineCommand } from './args';

/** The fd on which the supervisor reports to `run -d`: one line, `ZONE <id>` or `ERROR <json>`. */
export const REPORT_FD = 3;

export const command = defineCommand({
  name: '__supervise',
  summary: '(internal) own a detached zone for `bulkhead run -d`',
  options: {
    spec: { type: 'string', value: 'JSON', description: 'the zone spec' },
    rm: { type: 'boolean', description: 'destroy the zone when it exits' },
  },
  async run({ values }) {
    const report = (line: string) => {
      try {
        writeSync(REPORT_FD, line + '\n');
        closeSync(REPORT_FD);
      } catch {
        // started by hand, without the report pipe
      }
    };
    let zone: Zone;
    try {
      const spec = JSON.parse(values.spec ?? 'null') as ZoneSpec;
      zone = await Zone.create(spec, { onProgress: (line) => process.stderr.write(`${line}\n`) });
    } catch (err) {
      report(`ERROR ${JSON.stringify(errorToWire(err).error)}`);
      return 1;
    }
    report(`ZONE ${zone.id}`);
    log(`supervising zone ${zone.id} (${zone.name}), pid ${process.pid}`);
    const stop = () => {
      log('signalled: destroying the zone');
      void zone.destroy();
    };
    process.once('SIGTERM', stop).once('SIGINT', stop).once('SIGHUP', stop);
    const exit = await zone.wait();
    log(`zone exited: ${JSON.stringify(exit)}`);
    if (values.rm) await zone.destroy();
    else if (zone.state !== 'destroyed') await new Promise<void>((resolve) => zone.on('state', (s: string) => s === 'destroyed' && resolve()));
    log('zone destroyed; supervisor done');
    return 0;
  },
});

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}
