/**
 * `bulkhead serve --socket PATH [--group G]`: the Zone API over HTTP on a Unix socket (see
 * src/server/API.md). Zones created through it live until destroyed or until the server stops;
 * SIGINT/SIGTERM stop it cleanly (every zone destroyed, the socket removed).
 */
import { OwnedZones } from '../server/manager';
import { ZoneServer } from '../server/server';
import { Zone } from '../zone/zone';
import { defineCommand } from './args';

export const command = defineCommand({
  name: 'serve',
  summary: 'serve the Zone API over HTTP on a Unix socket (0600; 0660 with --group)',
  options: {
    socket: { type: 'string', short: 's', value: 'PATH', description: 'the Unix socket to listen on (required)' },
    group: { type: 'string', short: 'g', value: 'GROUP', description: 'also let this group connect (socket mode 0660)' },
  },
  details: 'Clients: connect(PATH) from the package, or BULKHEAD_SERVER=PATH bulkhead run|exec|ps|... from a shell.',
  async run({ values }) {
    if (!values.socket) {
      process.stderr.write('bulkhead serve: --socket PATH is required\n');
      return 2;
    }
    // Load the zone backend now (seconds under TCG) rather than on the first create.
    (await import('../zone/backend')).defaultBackend();
    const zones = new OwnedZones((spec) => Zone.create(spec, { onProgress: (line) => process.stderr.write(`${line}\n`) }));
    const server = await ZoneServer.listen({ manager: zones, socket: values.socket, group: values.group });
    process.stderr.write(`bulkhead serve: listening on ${server.socketPath} (pid ${process.pid})\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve).once('SIGTERM', resolve);
    });
    process.stderr.write('bulkhead serve: stopping (destroying its zones)\n');
    await server.close();
    await zones.close();
    return 0;
  },
});
