/** runc on an OCI bundle: the runtime under Docker, without Docker's daemon, image store or seccomp profile. */
import { OciRuntimeRunner } from './oci-runtime';

export class RuncRunner extends OciRuntimeRunner {
  readonly name = 'runc' as const;
  readonly description = 'runc on an OCI bundle (no seccomp profile, no daemon)';
  protected readonly binary = 'runc';
}
