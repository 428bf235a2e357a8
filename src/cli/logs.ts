/**
 * `bulkhead logs [-f] ZONE`: the zone's timeline — console lines as they are, agent, VMM and
 * lifecycle entries marked with their source; -f follows until the zone is destroyed or Ctrl-C.
 */
import { defineCommand } from './args';
import { detach, zoneSource } from './zone-common';

export const command = defineCommand({
  name: 'logs',
  summary: "a zone's console and events; -f follows",
  args: 'ZONE',
  options: {
    follow: { type: 'boolean', short: 'f', description: 'keep printing new entries' },
    timestamps: { type: 'boolean', short: 't', description: 'prefix each line with its time' },
  },
  positionals: { min: 1, max: 1 },
  async run({ values, positionals }) {
    const source = await zoneSource();
    const zone = await source.attach(positionals[0]!).catch((err: unknown) => {
      source.close();
      throw err;
    });
    const ac = new AbortController();
    const onSignal = () => ac.abort();
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    try {
      for await (const e of zone.logs({ follow: values.follow ?? false, signal: ac.signal })) {
        const when = values.timestamps ? `${new Date(e.time).toISOString()} ` : '';
        process.stdout.write(`${when}${e.source === 'console' ? '' : `[${e.source}] `}${e.text}\n`);
      }
      return 0;
    } finally {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      detach(zone);
      source.close();
    }
  },
});
