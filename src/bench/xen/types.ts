/** The Xen benchmark's data: what goes into dom0, the raw samples that come back, and the summary. */
import type { HostFacts } from '../host-facts';
import type { Summary } from '../method/stats';

export type XenSide = 'ours' | 'xl';

export interface GuestKernel {
  /** Short label: `generic` (Debian's kernel, the same as dom0's) or `xen` (our xen zone kernel). */
  readonly label: string;
  readonly kernel: string;
  readonly initrd: string;
}

export interface InsidePayload {
  readonly runs: number;
  readonly warmups: number;
  readonly kernels: readonly GuestKernel[];
  readonly cmdline: string;
  readonly memoryMiB: number;
  readonly marker: string;
  /** Round trips per event-channel sample, map+unmaps per grant sample. */
  readonly evtchnOps: number;
  readonly grantOps: number;
  /** xl side: the fallback poll of xenconsoled's log (fs.watch is the primary detector). */
  readonly pollMs: number;
  /** Pause after every destroy, so the next create does not meet a domain still being torn down. */
  readonly settleMs: number;
  readonly timeoutMs: number;
}

export interface OpSample {
  readonly round: number;
  readonly warmup: boolean;
  readonly us: number;
}

/**
 * One domU boot. ours: setup = the createPvDomain call (the libxenguest build, paused), toMarker =
 * unpause → the marker on our console stream. xl: setup = spawn `xl create` → it exits (built and
 * unpaused), toMarker = its exit → the marker in xenconsoled's log. total = start → marker.
 */
export interface CreateSample {
  readonly kernel: string;
  readonly side: XenSide;
  readonly round: number;
  readonly warmup: boolean;
  /** 1 when this side went first in its round, 2 when second. */
  readonly position: 1 | 2;
  readonly setupMs: number;
  readonly toMarkerMs: number;
  readonly totalMs: number;
  readonly detectedBy?: 'watch' | 'poll';
}

export interface InsideResult {
  readonly xen: { version: string; nrCpus: number; dom0Kernel: string };
  readonly evtchnUs: OpSample[];
  readonly grantUs: OpSample[];
  readonly create: CreateSample[];
  readonly errors: string[];
}

export interface Figure extends Summary {
  readonly samples: readonly number[];
}

export interface SideFigures {
  readonly setupMs: Figure;
  readonly toMarkerMs: Figure;
  readonly totalMs: Figure;
}

export interface KernelComparison {
  readonly kernel: string;
  readonly path: string;
  readonly ours?: SideFigures;
  readonly xl?: SideFigures;
  /** ours / xl of the totals' medians, with the worst and best pairing of their ranges. */
  readonly ratio?: { median: number; range: [number, number] };
  /** ours / xl per round (same round, same kernel): the paired view of the same data. */
  readonly pairedRatio?: Figure;
}

export interface XenBenchResults {
  readonly format: 'bulkhead-bench-xen/1';
  readonly startedAt: string;
  finishedAt: string;
  readonly host: HostFacts;
  readonly virtualization: string;
  readonly xenHostBootMs: number;
  readonly xen: InsideResult['xen'];
  readonly config: Omit<InsidePayload, 'kernels'> & { kernels: { label: string; kernel: string }[]; initrd: string };
  readonly evtchnUs: Figure;
  readonly grantUs: Figure;
  readonly comparisons: KernelComparison[];
  readonly skipped: string[];
  readonly errors: string[];
  goals: { name: string; target: string; measured: string; met: boolean | null }[];
  caveats: string[];
  readonly raw: Pick<InsideResult, 'evtchnUs' | 'grantUs' | 'create'>;
}
