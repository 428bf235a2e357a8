/**
 * Whether this kernel lets runc and crun set up a container's device cgroup. On a cgroup v2-only host
 * that takes a BPF program (BPF_CGROUP_DEVICE), so a kernel without the bpf() syscall fails every
 * container start with "bpf_prog_query(BPF_CGROUP_DEVICE) failed: function not implemented". Checked up
 * front so the report says why in one line instead of showing a runtime's error at run time.
 */
import * as fs from 'node:fs';

export function containerCgroupsUnavailableReason(
  cgroupRoot = '/sys/fs/cgroup',
  bpfSysctl = '/proc/sys/kernel/unprivileged_bpf_disabled',
): string | undefined {
  const cgroupV2Only = fs.existsSync(`${cgroupRoot}/cgroup.controllers`);
  // The sysctl exists exactly when the kernel has CONFIG_BPF_SYSCALL.
  if (cgroupV2Only && !fs.existsSync(bpfSysctl)) {
    return 'this kernel has cgroup v2 only and no bpf() syscall (CONFIG_BPF_SYSCALL, CONFIG_CGROUP_BPF), which runc and crun need for the device cgroup';
  }
  return undefined;
}
