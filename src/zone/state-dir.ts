/**
 * Every zone has a state directory, <runtime>/zones/<id>/ (0700): its record (zone.json), its log
 * timeline (log.jsonl), the owner's API socket (api.sock) and, for zones run in this process, the
 * agent's vsock sockets. The directory is removed on destroy; one whose owner process is gone is
 * removed by the next list(). Names are claimed with an O_EXCL link in <runtime>/zones/names/, so
 * two processes cannot create zones of the same name.
 */
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidConfigError } from '../errors';
import { writeFileAtomic } from '../util/cache';
import { isAlive } from '../util/process';
import { runtimeDir } from '../util/runtime-dir';
import type { ZoneState } from './types';

export interface ZoneRecord {
  id: string;
  name: string;
  /** The process that owns the zone's VM (or its connection to the emulated host). */
  ownerPid: number;
  backend: 'kvm' | 'emulated-host' | 'remote';
  image: string;
  createdAt: string;
  labels: Record<string, string>;
  memoryMiB: number;
  vcpus: number;
  state: ZoneState;
  /** The owner's HTTP API for this zone (src/server), through which other processes reach it. */
  apiSocket: string;
}

export const RECORD_FILE = 'zone.json';
export const LOG_FILE = 'log.jsonl';
export const API_SOCKET = 'api.sock';

export function zonesRoot(): string {
  return runtimeDir('zones');
}

function namesDir(): string {
  const dir = path.join(zonesRoot(), 'names');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function stateDirOf(id: string): string {
  return path.join(zonesRoot(), id);
}

/** Creates the zone's state directory (0700) and claims its name; a live zone of that name is an error. */
export function createStateDir(id: string, name: string): string {
  const link = path.join(namesDir(), name);
  try {
    symlinkSync(id, link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const holder = readRecord(safeReadlink(link) ?? '');
    if (holder && isAlive(holder.ownerPid)) {
      throw new InvalidConfigError('name', name, `a name no other zone has (zone ${holder.id} is called ${name})`);
    }
    rmSync(link, { force: true }); // left by a zone whose owner died
    symlinkSync(id, link);
  }
  const dir = stateDirOf(id);
  mkdirSync(dir, { recursive: false, mode: 0o700 });
  return dir;
}

export function writeRecord(record: ZoneRecord): void {
  writeFileAtomic(path.join(stateDirOf(record.id), RECORD_FILE), JSON.stringify(record, null, 2) + '\n');
}

export function readRecord(id: string): ZoneRecord | undefined {
  if (!/^[0-9a-f]{12}$/.test(id)) return undefined;
  try {
    return JSON.parse(readFileSync(path.join(stateDirOf(id), RECORD_FILE), 'utf8')) as ZoneRecord;
  } catch {
    return undefined;
  }
}

/** Removes a zone's state directory and releases its name. */
export function removeStateDir(id: string, name: string): void {
  rmSync(stateDirOf(id), { recursive: true, force: true });
  const link = path.join(namesDir(), name);
  if (safeReadlink(link) === id) rmSync(link, { force: true });
}

/**
 * The zones of every process on this host, newest first. Directories whose owner is gone (killed
 * before it could clean up) are removed on the way, with their names.
 */
export function listRecords(): ZoneRecord[] {
  const out: ZoneRecord[] = [];
  for (const entry of readdirSync(zonesRoot())) {
    if (!/^[0-9a-f]{12}$/.test(entry)) continue;
    const record = readRecord(entry);
    if (record && isAlive(record.ownerPid)) {
      out.push(record);
      continue;
    }
    if (!record && isYoung(entry)) continue; // being created right now
    removeStateDir(entry, record?.name ?? '');
  }
  for (const name of readdirSync(namesDir())) {
    const id = safeReadlink(path.join(namesDir(), name));
    if (id && !out.some((r) => r.id === id) && !isYoung(id)) rmSync(path.join(namesDir(), name), { force: true });
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** A live zone by id, unique id prefix, or name. */
export function findRecord(ref: string): ZoneRecord | undefined {
  const all = listRecords();
  return all.find((r) => r.name === ref) ?? all.find((r) => r.id === ref) ?? singleOrUndefined(all.filter((r) => ref.length >= 4 && r.id.startsWith(ref)));
}

function singleOrUndefined<T>(items: T[]): T | undefined {
  return items.length === 1 ? items[0] : undefined;
}

function safeReadlink(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

/** A directory made in the last ten seconds may not have its record yet. */
function isYoung(id: string): boolean {
  try {
    return Date.now() - statSync(stateDirOf(id)).mtimeMs < 10_000;
  } catch {
    return false;
  }
}
