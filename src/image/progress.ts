/**
 * Progress of long image work, as events for a callback. The CLI renders them on stderr; a
 * program can show them any way it likes or ignore them.
 */
export type ImagePhase = 'resolve' | 'download' | 'verify' | 'apply' | 'mkfs' | 'done' | 'cached' | 'wait';

export interface ImageProgress {
  readonly phase: ImagePhase;
  /** A short human sentence: "layer 2/3: 14.2 MiB of 40.0 MiB". */
  readonly message: string;
  /** 1-based index of the layer concerned, and the total, when a layer is concerned. */
  readonly layer?: number;
  readonly layers?: number;
  readonly bytes?: number;
  readonly totalBytes?: number;
}

export type ProgressCallback = (event: ImageProgress) => void;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Calls `onProgress` at most every `intervalMs` for byte counts, always for the final count. */
export function throttledBytes(
  intervalMs: number,
  emit: (bytes: number) => void,
): { update(bytes: number): void; flush(bytes: number): void } {
  let last = 0;
  return {
    update(bytes) {
      const now = Date.now();
      if (now - last >= intervalMs) {
        last = now;
        emit(bytes);
      }
    },
    flush(bytes) {
      emit(bytes);
    },
  };
}
