/** The shape of a lifecycle run's results.json: sandbox start, exec, streams, idle memory, density. */
import type { Summary } from '../method/stats';

/** What is compared: a zone, and its container counterparts. */
export type SandboxKind = 'zone' | 'docker' | 'runc';
export const SANDBOX_KINDS: readonly SandboxKind[] = ['zone', 'docker', 'runc'];

export interface FigureDef {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly better: 'lower' | 'higher';
}

export interface LifecycleFigure extends FigureDef {
  /** Per sandbox kind: median [min-max] of the rounds' samples. */
  readonly bySandbox: Partial<Record<SandboxKind, Summary & { samples: number[] }>>;
}

export interface SandboxOutcome {
  readonly kind: SandboxKind;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
}

/** Where the figures were measured, in words the report repeats with every goal. */
export interface VirtualizationMode {
  /** host: this machine's KVM and kernel; emulated-host: a nested run inside QEMU TCG. */
  readonly where: 'host' | 'emulated-host';
  /** `hardware`, `pvm`, `none`, or for a nested run `nested SVM under TCG`. */
  readonly mode: string;
  readonly detail: string;
}

export interface GoalRow {
  readonly goal: string;
  /** The target as a sentence: `zone/Docker <= 1.01`. */
  readonly target: string;
  /** The measured value in the target's terms (a ratio, or MiB), or null when not measured. */
  readonly measured: number | null;
  readonly measuredText: string;
  /** null: not measured in this run (reason says why). */
  readonly met: boolean | null;
  /** How far from the target, in words (`2.3x over`, `0.4 MiB under`). */
  readonly by: string;
  readonly note?: string;
}

export interface LifecycleResults {
  readonly format: 'bulkhead-lifecycle/1';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly settings: {
    readonly rounds: number;
    readonly warmups: number;
    readonly seed: number;
    readonly streamBytes: number;
    readonly densities: readonly number[];
    readonly execSamples: number;
    readonly zoneMemoryMiB: number;
  };
  readonly virtualization: VirtualizationMode;
  readonly sandboxes: readonly SandboxOutcome[];
  readonly figures: readonly LifecycleFigure[];
  /** Per round, the order the sandboxes were measured in (shuffled from the seed). */
  readonly executed: readonly { round: number; kind: SandboxKind }[];
  /** Rounds a sandbox lost and ran again (once each; their samples were dropped): when, and why. */
  /** Figure calls lost and run again from a recovered sandbox (`figure`: absent in results written before it was per call). */
  readonly retried: readonly { round: number; kind: SandboxKind; figure?: string; reason: string }[];
  /** Where a zone's create -> first output goes, median ms per phase. */
  readonly startSplit: Record<string, number>;
  /** Zone idle memory next to the guest memory it touched (MiB, medians). */
  readonly zoneIdle?: { hostRssMiB: number; guestTouchedMiB: number };
  readonly goals: readonly GoalRow[];
  /** The emulated host, for a nested run. */
  readonly emulatedHost?: { readonly bootMs: number; readonly kernelRelease: string };
}
