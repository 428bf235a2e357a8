/** The shapes of the addon's Xen handle classes (native/binding/xen_handles.cc). */
import { loadNative } from '../kvm/native';

export interface NativeFdWatch {
  close(): void;
  ref(): void;
  unref(): void;
}

export interface NativeXenStore {
  read(tx: number, path: string): Buffer;
  write(tx: number, path: string, data: Buffer): void;
  mkdir(tx: number, path: string): void;
  rm(tx: number, path: string): void;
  ls(tx: number, path: string): string[];
  getPerms(tx: number, path: string): { domid: number; perms: number }[];
  setPerms(tx: number, path: string, perms: { domid: number; perms: number }[]): void;
  txStart(): number;
  txEnd(tx: number, abort: boolean): void;
  watch(path: string, token: string): void;
  unwatch(path: string, token: string): void;
  nextEvent(): { path: string; token: string } | null;
  fd(): number;
  close(): void;
}

export interface NativeEvtchn {
  bindUnbound(remoteDomid: number): number;
  bindInterdomain(remoteDomid: number, remotePort: number): number;
  notify(port: number): void;
  unmask(port: number): void;
  unbind(port: number): void;
  pending(): number;
  fd(): number;
  close(): void;
}

export interface NativeGnt {
  share(domid: number, pages: number, writable: boolean): { id: number; refs: number[] };
  map(domid: number, refs: number[], writable: boolean): number;
  read(id: number, offset: number, length: number): Buffer;
  write(id: number, offset: number, data: Buffer): void;
  release(id: number): void;
  regions(): number;
  consoleRead(id: number, cap: number): Buffer;
  consoleWrite(id: number, data: Buffer): number;
  close(): void;
}

interface Ctors {
  FdWatch: new (fd: number, onReadable: () => void) => NativeFdWatch;
  XenStoreHandle: new () => NativeXenStore;
  EvtchnHandle: new () => NativeEvtchn;
  GntHandle: new () => NativeGnt;
}

export function nativeXenHandles(): Ctors {
  return loadNative() as unknown as Ctors;
}
