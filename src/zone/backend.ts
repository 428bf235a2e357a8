/**
 * Which backend runs a zone, and the registry behind Zone.create/list/attach. On hardware KVM a
 * zone's VM runs in this process (./local). Where /dev/kvm is PVM or missing, zones run inside the
 * emulated host, reached through a `bulkhead serve` there (./remote over the host's connect()).
 * A zone of another process is reached through the API socket in its state directory.
 */
import { probeHost } from '../host/probe';
import { publishZone } from '../server/zone-socket';
import { createEmulatedZone } from './emulated';
import { ZoneNotFoundError } from './errors';
import { LocalZone } from './local';
import type { CreateOptions, Zone } from './zone';
import type { ZoneSpec } from './spec';
import type { ZoneInfo } from './types';
import { createStateDir, findRecord, listRecords, removeStateDir } from './state-dir';
import { endpointOf } from '../server/http-client';

let probed: { kind: 'kvm' | 'emulated-host'; why: string } | undefined;

/** Which backend `auto` picks here: in-process on hardware-semantics KVM, else the emulated host (probed once per process). */
export function defaultBackend(): { kind: 'kvm' | 'emulated-host'; why: string } {
  probed ??= probeBackend();
  return probed;
}

function probeBackend(): { kind: 'kvm' | 'emulated-host'; why: string } {
  const zones = probeHost().zones;
  // With no backend at all, the emulated host's own error (QEMU missing) says what to install.
  return { kind: zones.backend === 'kvm' ? 'kvm' : 'emulated-host', why: zones.meaning };
}

export async function createZone(spec: ZoneSpec, opts: CreateOptions): Promise<Zone> {
  const kind = !opts.backend || opts.backend === 'auto' ? defaultBackend().kind : opts.backend;
  if (kind === 'kvm') {
    const zone = await LocalZone.create(spec, opts);
    await publishZone(zone);
    return zone;
  }
  const zone = await createEmulatedZone(spec, opts);
  // Out here the zone gets a state directory of its own, so `bulkhead ps/exec` from other shells find it.
  try {
    createStateDir(zone.id, zone.name);
    await publishZone(zone);
  } catch (err) {
    await zone.destroy();
    throw err;
  }
  zone.on('state', (state: string) => state === 'destroyed' && removeStateDir(zone.id, zone.name));
  return zone;
}

/** Every live zone on this host, from the records in the state directories (dead owners' are cleaned up). */
export async function listZones(): Promise<ZoneInfo[]> {
  return listRecords().map((r) => ({
    id: r.id,
    name: r.name,
    state: r.state,
    backend: r.backend,
    image: r.image,
    labels: r.labels,
    createdAt: r.createdAt,
    memoryMiB: r.memoryMiB,
    vcpus: r.vcpus,
  }));
}

/** A zone of this host by id, name or id prefix, reached through its owner's api.sock; disposing it detaches. */
export async function attachZone(ref: string): Promise<Zone> {
  const record = findRecord(ref);
  if (!record) throw new ZoneNotFoundError(ref);
  const { RemoteZone } = await import('./remote');
  const endpoint = endpointOf({ connect: endpointOf(record.apiSocket).connect, describe: `zone ${record.name}'s socket ${record.apiSocket}` });
  return RemoteZone.open(endpoint, record.id, { backend: record.backend, owned: false });
}
