/** `bulkhead stop [-t SECONDS] ZONE...`: stops zones (gracefully, then forced); prints each name. */
import { defineCommand, integerFlag } from './args';
import { detach, zoneSource } from './zone-common';

export const command = defineCommand({
  name: 'stop',
  summary: 'stop zones: their processes are asked to end, then the VM is forced off',
  args: 'ZONE [ZONE...]',
  options: { time: { type: 'string', short: 't', value: 'SECONDS', description: 'grace before forcing (default 5)' } },
  positionals: { min: 1, max: 64 },
  async run({ values, positionals }) {
    const grace = integerFlag('time', values.time, 0);
    const source = await zoneSource();
    try {
      for (const ref of positionals) {
        const zone = await source.attach(ref);
        try {
          await zone.stop(grace === undefined ? {} : { graceMs: grace * 1000 });
          process.stdout.write(`${ref}\n`);
        } finally {
          detach(zone);
        }
      }
      return 0;
    } finally {
      source.close();
    }
  },
});
