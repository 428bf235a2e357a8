/**
 * What the addon exports for Xen (native/binding/xen_wrap.cc): the dlopen status of Xen's libraries
 * and one-shot host information through libxenctrl.
 */
import { loadNative } from '../kvm/native';

export interface NativeXenLibrary {
  name: string;
  soname: string;
  loaded: boolean;
  error: string | null;
}

export interface NativeXenDomain {
  domid: number;
  flags: number;
  totPages: number;
  maxPages: number;
  cpuTimeNs: number;
  onlineVcpus: number;
  maxVcpuId: number;
  handle: Buffer;
}

export type NativeXenHostInfo =
  | {
      ok: true;
      version: { major: number; minor: number; extra: string };
      physinfo: {
        nrCpus: number;
        cpuKhz: number;
        threadsPerCore: number;
        coresPerSocket: number;
        nrNodes: number;
        capabilities: number;
        totalPages: number;
        freePages: number;
        scrubPages: number;
        outstandingPages: number;
      };
      domains: NativeXenDomain[];
    }
  | { ok: false; errno: number; message: string };

export type NativeXenResult<T> = ({ ok: true } & T) | { ok: false; errno: number; message: string };

export interface NativeXen {
  xenLibraries(): NativeXenLibrary[];
  xenHostInfo(): NativeXenHostInfo;
  xenDomain(domid: number): NativeXenResult<{ domain: NativeXenDomain }>;
  xenDomainOp(op: 'pause' | 'unpause' | 'destroy', domid: number): NativeXenResult<object>;
  /** xc_domain_setmaxmem: Xen's limit on the domain's memory, in KiB. */
  xenDomainSetMaxMem(domid: number, kib: number): NativeXenResult<object>;
}

export function loadNativeXen(): NativeXen {
  return loadNative() as unknown as NativeXen;
}
