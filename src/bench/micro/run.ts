/**
 * Library microbenchmarks (tinybench) of the KVM layer: VM create + destroy, and the port-I/O exit
 * round trip to a JavaScript handler. `npm run bench` runs this; `--json` prints the figures as JSON.
 * On this kind of host /dev/kvm is PVM: the figures say what bulkhead's own layer costs on it, not what
 * it would cost with hardware virtualization (the report line says which mode was measured).
 */
import { Bench } from 'tinybench';
import { collectHostFacts } from '../host-facts';
import { openHypervisor, type Kvm } from '../../kvm';
import { EXIT_PORT, loadOutLoop } from './guest';

const EXITS_PER_ITERATION = 100;

export interface MicroResult {
  readonly name: string;
  readonly unit: string;
  readonly median: number;
  readonly mean: number;
  readonly p99: number;
  readonly samples: number;
}

export async function runMicroBenchmarks(options: { timeMs?: number } = {}): Promise<MicroResult[]> {
  const kvm = openHypervisor();
  try {
    const bench = new Bench({ time: options.timeMs ?? 2000, warmupTime: 300 });
    bench.add('VM create + destroy (2 MiB, 1 vCPU)', async () => {
      const vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
      await vm.destroy();
    });
    const exits = exitRoundTrip(kvm);
    bench.add(`${EXITS_PER_ITERATION} port-I/O exits to a JS handler`, () => exits.next(EXITS_PER_ITERATION), {
      beforeAll: () => exits.start(),
      afterAll: () => exits.stop(),
    });
    await bench.run();
    return bench.tasks.map((task) => {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state === 'errored' ? r.error.message : r.state}`);
      const perExit = task.name.includes('exits') ? EXITS_PER_ITERATION : 1;
      // Latency statistics are in ms per iteration: report µs per operation.
      const us = (ms: number): number => (ms * 1000) / perExit;
      return {
        name: perExit > 1 ? 'port-I/O exit round trip to a JS handler' : task.name,
        unit: 'µs/op',
        median: us(r.latency.p50),
        mean: us(r.latency.mean),
        p99: us(r.latency.p99),
        samples: r.period > 0 ? Math.round(r.totalTime / r.period) : 0,
      };
    });
  } finally {
    kvm.close();
  }
}

/** A VM that runs the exit loop for the whole task; next(n) resolves after n more exits. */
function exitRoundTrip(kvm: Kvm): { start(): void; next(n: number): Promise<void>; stop(): Promise<void> } {
  let vm: ReturnType<Kvm['createVm']> | undefined;
  let count = 0;
  let waiter: { target: number; resolve: () => void } | undefined;
  return {
    start() {
      vm = kvm.createVm({ memoryMiB: 2, vcpus: 1 });
      loadOutLoop(vm);
      vm.onPort(EXIT_PORT, 1, () => {
        count++;
        if (waiter && count >= waiter.target) {
          const w = waiter;
          waiter = undefined;
          w.resolve();
        }
      });
      vm.start();
    },
    next(n) {
      return new Promise((resolve) => (waiter = { target: count + n, resolve }));
    },
    async stop() {
      await vm?.destroy();
      vm = undefined;
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const facts = collectHostFacts();
  let results: MicroResult[];
  try {
    results = await runMicroBenchmarks();
  } catch (err) {
    process.stderr.write(`bench micro: cannot run: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ host: facts, results }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(`bulkhead microbenchmarks: ${facts.cpuModel}, virtualization ${facts.virtualization} (${facts.virtualizationDetail})\n`);
  if (facts.virtualization !== 'hardware') {
    process.stdout.write('note: not hardware virtualization: these figures do not stand for a vmx/svm host\n');
  }
  for (const r of results) {
    process.stdout.write(`  ${r.name.padEnd(45)} median ${r.median.toFixed(2)} ${r.unit}  (mean ${r.mean.toFixed(2)}, p99 ${r.p99.toFixed(2)}, ${r.samples} samples)\n`);
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
