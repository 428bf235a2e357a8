/**
 * What a zone server serves: a ZoneManager. `bulkhead serve` uses OwnedZones, which creates zones
 * and owns them (they live until destroyed or the server stops); each zone's own api.sock uses
 * singleZone(), a manager of one zone made elsewhere, which cannot create.
 */
import { ZoneNotFoundError } from '../zone/errors';
import type { ZoneSpec } from '../zone/spec';
import type { Zone } from '../zone/zone';

export interface ZoneManager {
  /** Absent when this server only serves zones made elsewhere (POST /zones then answers 405). */
  create?(spec: ZoneSpec): Promise<Zone>;
  list(): readonly Zone[];
  /** By id, name, or a unique id prefix of at least 4 characters; throws ZoneNotFoundError. */
  get(ref: string): Zone;
}

export function findZone(zones: readonly Zone[], ref: string): Zone {
  const found =
    zones.find((z) => z.id === ref) ??
    zones.find((z) => z.name === ref) ??
    (ref.length >= 4 ? only(zones.filter((z) => z.id.startsWith(ref))) : undefined);
  if (!found) throw new ZoneNotFoundError(ref);
  return found;
}

function only<T>(items: T[]): T | undefined {
  return items.length === 1 ? items[0] : undefined;
}

/** A manager of one zone, for that zone's api.sock. */
export function singleZone(zone: Zone): ZoneManager {
  return {
    list: () => (zone.state === 'destroyed' ? [] : [zone]),
    get: (ref) => findZone(zone.state === 'destroyed' ? [] : [zone], ref),
  };
}

/** Zones this server creates and owns. A destroyed zone leaves the list; close() destroys the rest. */
export class OwnedZones implements ZoneManager, AsyncDisposable {
  private readonly zones = new Map<string, Zone>();
  private closing = false;

  constructor(private readonly factory: (spec: ZoneSpec) => Promise<Zone>) {}

  async create(spec: ZoneSpec): Promise<Zone> {
    const zone = await this.factory(spec);
    if (this.closing) {
      await zone.destroy();
      throw new ZoneNotFoundError(zone.id);
    }
    this.zones.set(zone.id, zone);
    const forget = (state: string) => {
      if (state !== 'destroyed') return;
      this.zones.delete(zone.id);
      zone.off('state', forget);
    };
    zone.on('state', forget);
    if (zone.state === 'destroyed') forget('destroyed');
    return zone;
  }

  list(): readonly Zone[] {
    return [...this.zones.values()];
  }

  get(ref: string): Zone {
    return findZone(this.list(), ref);
  }

  /** Destroys every zone still here. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.zones.values()].map((z) => z.destroy()));
    this.zones.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
