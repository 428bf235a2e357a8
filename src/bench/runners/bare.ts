/** The workload as a plain process of the host: the floor every other runner is compared with. */
import { BulkheadError } from '../../errors';
import { runCommand } from '../../util/process';
import { parseWorkloadOutput, type WorkloadResult } from '../workload';
import type { Availability, BenchRunner, RunnerContext, RunOptions, WorkloadInvocation } from './runner';

export class BareRunner implements BenchRunner {
  readonly name = 'bare' as const;
  readonly location = 'host' as const;
  readonly id = 'bare';
  readonly description = 'the workload as a plain host process (no container, no VM)';
  readonly iterationScale = {};
  private workloadPath: string | undefined;

  async probe(): Promise<Availability> {
    return { available: true };
  }

  async version(): Promise<string | undefined> {
    return undefined;
  }

  async prepare(context: RunnerContext): Promise<void> {
    this.workloadPath = context.workloadPath;
  }

  async run(invocation: WorkloadInvocation, options: RunOptions): Promise<WorkloadResult[]> {
    if (!this.workloadPath) throw new BulkheadError('BENCH_FAILED', 'bare runner used before prepare()');
    const r = await runCommand(this.workloadPath, invocation.args, options);
    if (r.code !== 0) throw new BulkheadError('BENCH_FAILED', `bare workload exited with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    return parseWorkloadOutput(r.stdout, invocation.tests);
  }

  async cleanup(): Promise<void> {
    this.workloadPath = undefined;
  }
}
