/**
 * A zone's own API socket: how other processes reach a zone this process owns (Zone.attach, and
 * the CLI's exec, logs, top, stop and rm). The owner calls publishZone() once the zone's state
 * directory exists (createStateDir); it serves the zone at <state dir>/api.sock (0600, in a 0700
 * directory), writes the zone's record with that socket and this process as owner, keeps the
 * record's state current, and closes when the zone is destroyed.
 */
import * as path from 'node:path';
import { API_SOCKET, readRecord, stateDirOf, writeRecord, type ZoneRecord } from '../zone/state-dir';
import type { Zone } from '../zone/zone';
import type { ZoneState } from '../zone/types';
import { singleZone } from './manager';
import { ZoneServer } from './server';

export async function publishZone(zone: Zone, opts: { ownerPid?: number } = {}): Promise<ZoneServer> {
  const socket = path.join(stateDirOf(zone.id), API_SOCKET);
  const server = await ZoneServer.listen({ manager: singleZone(zone), socket });
  const info = zone.info();
  const base: ZoneRecord = readRecord(zone.id) ?? {
    id: info.id,
    name: info.name,
    ownerPid: opts.ownerPid ?? process.pid,
    backend: info.backend,
    image: info.image,
    createdAt: info.createdAt,
    labels: info.labels,
    memoryMiB: info.memoryMiB,
    vcpus: info.vcpus,
    state: info.state,
    apiSocket: socket,
  };
  const save = (state: ZoneState) => {
    try {
      writeRecord({ ...(readRecord(zone.id) ?? base), state, apiSocket: socket, ownerPid: opts.ownerPid ?? process.pid });
    } catch {
      // the state directory is being removed with the zone
    }
  };
  save(zone.state);
  const onState = (state: ZoneState) => {
    if (state === 'destroyed') {
      zone.off('state', onState);
      void server.close();
      return;
    }
    save(state);
  };
  zone.on('state', onState);
  if (zone.state === 'destroyed') onState('destroyed');
  return server;
}
