/** The runner registry: which runners exist, and where each one runs. */
import { BareRunner } from './bare';
import { CrunRunner } from './crun';
import { DockerRunner } from './docker';
import { EmulatedHostRunner } from './emulated-host';
import { RuncRunner } from './runc';
import { RUNNER_NAMES, type BenchRunner, type RunnerLocation, type RunnerName } from './runner';
import { RunscRunner } from './runsc';
import { ZoneRunner } from './zone';

export * from './runner';
export { BareRunner, CrunRunner, DockerRunner, EmulatedHostRunner, RuncRunner, RunscRunner, ZoneRunner };

export function createHostRunner(name: Exclude<RunnerName, 'zone'>): BenchRunner {
  switch (name) {
    case 'bare':
      return new BareRunner();
    case 'docker':
      return new DockerRunner();
    case 'runc':
      return new RuncRunner();
    case 'crun':
      return new CrunRunner();
    case 'runsc':
      return new RunscRunner();
  }
}

/**
 * The runners for `names` at each of `locations`, in a stable order (bare, docker, runc, crun, runsc per
 * location, then zone). Zones run on the host only with hardware virtualization; otherwise they belong in
 * the emulated host's nested run: `zoneLocation` says which.
 */
export function createRunners(names: readonly RunnerName[], locations: readonly RunnerLocation[], zoneLocation: RunnerLocation): BenchRunner[] {
  const runners: BenchRunner[] = [];
  for (const location of locations) {
    for (const name of RUNNER_NAMES) {
      if (name === 'zone' || !names.includes(name)) continue;
      runners.push(location === 'host' ? createHostRunner(name) : new EmulatedHostRunner(name));
    }
  }
  // In the emulated host, the zone joins the nested run, measured beside the containers in there.
  // Without the emulated host in `locations`, ZoneRunner('host') says why zones cannot run on this KVM.
  if (names.includes('zone')) {
    runners.push(zoneLocation === 'emulated-host' && locations.includes('emulated-host') ? new EmulatedHostRunner('zone') : new ZoneRunner('host'));
  }
  return runners;
}
