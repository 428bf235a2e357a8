/**
 * gVisor's runsc on an OCI bundle. Debian's 2022 build only works here with --platform=ptrace (no
 * systrap; kvm hangs) and --network=none. Every syscall becomes a ptrace stop (~30-50 µs), so syscall
 * tests run with 1% of the iterations to keep a run bounded; figures are per call, so still comparable.
 */
import { OciRuntimeRunner } from './oci-runtime';

export class RunscRunner extends OciRuntimeRunner {
  readonly name = 'runsc' as const;
  readonly description = "gVisor runsc, Debian's 2022 build, platform ptrace (the only one that works in that build: no systrap, kvm hangs), no network";
  protected readonly binary = 'runsc';
  override readonly iterationScale = { syscall: 0.01 };

  protected override globalArgs(): string[] {
    return ['--platform=ptrace', '--network=none'];
  }

  protected override needsCgroupDevices(): boolean {
    return false;
  }

  protected override forceDeleteFlag(): string {
    return '-force';
  }
}
