/** The lifecycle figures, one definition each; density figures are made per N. */
import type { FigureDef } from './types';

export const START_ECHO: FigureDef = { id: 'start_echo', title: 'create → first output of `echo`', unit: 'ms', better: 'lower' };
export const EXEC_TRUE: FigureDef = { id: 'exec_true', title: 'exec round trip (`true`)', unit: 'ms', better: 'lower' };
export const STREAM_CAT: FigureDef = { id: 'stream_cat', title: 'stream through `cat`, in and out', unit: 'MiB/s', better: 'higher' };
/** The same bytes through a pipe inside the sandbox, no host I/O: the floor the guest's (or container's) own CPU sets for the stream. */
export const PIPE_INSIDE: FigureDef = { id: 'pipe_inside', title: 'the same bytes through a pipe inside (`head -c N /dev/zero | cat`)', unit: 'MiB/s', better: 'higher' };
export const IDLE_MEMORY: FigureDef = { id: 'idle_memory', title: 'memory per idle sandbox', unit: 'MiB', better: 'lower' };

export function densityTime(n: number): FigureDef {
  return { id: `density_${n}_time`, title: `density: ${n} started at once, until all answered`, unit: 'ms', better: 'lower' };
}

export function densityMemory(n: number): FigureDef {
  return { id: `density_${n}_memory`, title: `density: memory held by ${n}`, unit: 'MiB', better: 'lower' };
}

export function figureDefs(densities: readonly number[]): FigureDef[] {
  return [START_ECHO, EXEC_TRUE, STREAM_CAT, PIPE_INSIDE, IDLE_MEMORY, ...densities.flatMap((n) => [densityTime(n), densityMemory(n)])];
}
