/**
 * `bulkhead rm [-f] ZONE...`: destroys zones that have ended (-f: also running ones), releasing
 * everything they held; a detached zone's supervising process then exits.
 */
import { InvalidStateError } from '../errors';
import { defineCommand } from './args';
import { detach, zoneSource } from './zone-common';

export const command = defineCommand({
  name: 'rm',
  summary: 'remove zones that have ended (-f: stop and remove running ones)',
  args: 'ZONE [ZONE...]',
  options: { force: { type: 'boolean', short: 'f', description: 'remove running zones too' } },
  positionals: { min: 1, max: 64 },
  async run({ values, positionals }) {
    const source = await zoneSource();
    try {
      for (const ref of positionals) {
        const zone = await source.attach(ref);
        try {
          if (!values.force && !zone.exit) throw new InvalidStateError(`remove zone ${ref} (stop it first, or use rm -f)`, zone.state, ['exited', 'failed']);
          await zone.destroy();
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
