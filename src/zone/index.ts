/**
 * Zones: an OCI image in its own VM with its own kernel, driven from TypeScript.
 *
 *   await using zone = await Zone.create({ image: 'busybox', memoryMiB: 128 });
 *   const { stdout } = await zone.exec(['echo', 'hello']);
 */
export { Zone, type CreateOptions } from './zone';
export { defaultBackend } from './backend';
export { validateZoneSpec, ZONE_DEFAULTS, type ZoneSpec, type ValidatedZoneSpec } from './spec';
export { ZoneClosedError, ZoneNotFoundError, ZoneStartError } from './errors';
export type {
  BufferedExecOptions,
  DirEntry,
  ExecOptions,
  ExecResult,
  FileStat,
  LogEntry,
  LogOptions,
  ProcessEnd,
  SpawnOptions,
  ZoneBackendKind,
  ZoneEvent,
  ZoneExit,
  ZoneFiles,
  ZoneInfo,
  ZoneMetrics,
  ZoneStartup,
  ZoneProcess,
  ZoneState,
} from './types';
export { ZONE_STATES } from './types';
