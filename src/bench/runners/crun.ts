/**
 * crun on an OCI bundle. crun 1.8 refuses this host's hybrid cgroup layout (v1 controllers plus
 * /sys/fs/cgroup/unified), so every crun command runs in a private mount namespace with the unified
 * hierarchy unmounted there. The namespace dies with the command; the host's mounts are untouched.
 */
import { OciRuntimeRunner } from './oci-runtime';
import { which } from '../../util/process';
import type { Availability } from './runner';

const HIDE_UNIFIED_CGROUP = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"';

export class CrunRunner extends OciRuntimeRunner {
  readonly name = 'crun' as const;
  readonly description = 'crun on an OCI bundle, in a private mount namespace (hybrid cgroups workaround)';
  protected readonly binary = 'crun';

  override async probe(): Promise<Availability> {
    if (!which('unshare')) return { available: false, reason: 'unshare (util-linux) is not installed; crun needs it here for a private mount namespace' };
    return super.probe();
  }

  protected override command(args: string[]): [string, string[]] {
    return ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', HIDE_UNIFIED_CGROUP, 'crun', ...args]];
  }
}
