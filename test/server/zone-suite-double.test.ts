// The zone suite (test/support/zone-suite.ts) against the ChildProcessZone TEST DOUBLE, directly
// and through connect() to a zone server, so the suite and the served path are debugged before
// the backend exists. This is not the real run: that is the same suite against Zone.create (real
// VMs; on this machine inside the emulated host), which needs src/zone/local.ts.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '../../src/server/client';
import { OwnedZones } from '../../src/server/manager';
import { ZoneServer } from '../../src/server/server';
import { listZones } from '../../src/zone/backend';
import { ChildProcessZone } from '../support/child-process-zone';
import { runZoneSuite } from '../support/zone-suite';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-suite-double-'));
process.env.BULKHEAD_RUNTIME_DIR = path.join(work, 'run');
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

const configuredImage = { image: 'busybox-configured', env: { FROM_IMAGE: 'yes' }, cwd: '/srv', uid: 65534 };

t.test('directly', async (t) => {
  runZoneSuite(t, (spec) => ChildProcessZone.start(spec), {
    list: listZones,
    crash: (zone) => (zone as ChildProcessZone).crash(),
    configuredImage,
    lifetimeMs: 1500,
    longRunSeconds: 3, // nothing between the caller and the zone here; the served run below does 65 s
  });
});

t.test('through connect() to a zone server', async (t) => {
  const zones = new OwnedZones((spec) => ChildProcessZone.start(spec));
  const server = await ZoneServer.listen({ manager: zones, socket: path.join(work, 'serve.sock') });
  const client = await connect(server.socketPath);
  t.teardown(async () => {
    client.close();
    await server.close();
    await zones.close();
  });
  runZoneSuite(t, (spec) => client.create(spec), {
    list: () => client.list(),
    crash: (zone) => (zones.get(zone.id) as ChildProcessZone).crash(),
    configuredImage,
    lifetimeMs: 1500,
  });
});
