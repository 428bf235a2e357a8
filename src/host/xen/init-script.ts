/**
 * /init of the Xen test host's dom0 initramfs (busybox sh as PID 1). Like the emulated host's
 * (src/host/emulated/init-script.ts): the real host's root over virtio-9p under a tmpfs overlay,
 * the API filesystems, chroot, the control agent under the host's own node. Before that it loads
 * the dom0 kernel's modules (Debian's generic kernel has virtio, 9p and Xen's devices as modules),
 * and it starts Xen's daemons inside the new root: xenstored, xen-init-dom0 (dom0's xenstore
 * entries), xenconsoled. Xen's programs and libraries stay in the unpacked tree in the cache
 * (XEN_ROOT, the same path inside); /usr/lib/xen-4.17 and /etc/xen point there so their compiled-in
 * paths resolve.
 */
import { envFile, FIND_CONTROL_PORT, INIT_PREAMBLE, MOUNT_NEW_ROOT, type InitSettings } from '../emulated/init-script';

export interface XenInitSettings extends InitSettings {
  /** The unpacked Xen tree (see packages.ts), the same path inside. */
  xenRoot: string;
  /** Module files under /lib/modules in the initramfs, in load order. */
  modules: readonly string[];
}

export function xenEnvFile(s: XenInitSettings): string {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  return envFile(s) + [`XEN_ROOT=${q(s.xenRoot)}`, `MODULES=${q(s.modules.join(' '))}`, ''].join('\n');
}

export const XEN_INIT_SCRIPT = `#!/bin/busybox sh
# bulkhead Xen test host: PID 1 of dom0's initramfs (generated from src/host/xen/init-script.ts).
${INIT_PREAMBLE}[ -e /sys/hypervisor/type ] && [ "$(cat /sys/hypervisor/type)" = xen ] || fail "not running on Xen"
say "uptime $(cut -d' ' -f1 /proc/uptime)s: loading modules"
for m in $MODULES; do
  insmod "/lib/modules/$m" || fail "cannot load $m"
done

${MOUNT_NEW_ROOT}mkdir -p $R/run/bulkhead $R/run/xen $R/run/xenstored
cp /agent.js $R/run/bulkhead/agent.js
mount -t xenfs xenfs $R/proc/xen || fail "cannot mount xenfs"

# Xen's compiled-in paths, pointed at the unpacked packages; its programs on PATH and its libraries
# where the dynamic loader looks by default (commands come with the real host's PATH, no LD_LIBRARY_PATH).
[ -d "$R$XEN_ROOT/usr/lib/xen-4.17/bin" ] || fail "no Xen tree at $XEN_ROOT"
rm -rf $R/etc/xen $R/usr/lib/xen-4.17
ln -s "$XEN_ROOT/usr/lib/xen-4.17" $R/usr/lib/xen-4.17
ln -s "$XEN_ROOT/etc/xen" $R/etc/xen
mkdir -p $R/usr/local/sbin
for f in "$R$XEN_ROOT"/usr/lib/xen-4.17/bin/* "$R$XEN_ROOT"/usr/bin/*; do
  n=\${f##*/}; [ -e "$R/usr/local/sbin/$n" ] || ln -s "\${f#$R}" "$R/usr/local/sbin/$n"
done
for f in "$R$XEN_ROOT"/usr/lib/x86_64-linux-gnu/*.so.*; do
  n=\${f##*/}; [ -e "$R/usr/lib/x86_64-linux-gnu/$n" ] || ln -s "\${f#$R}" "$R/usr/lib/x86_64-linux-gnu/$n"
done
rm -rf $R/var/lib/xen $R/var/lib/xenstored $R/var/log/xen
mkdir -p $R/var/lib/xen $R/var/lib/xenstored $R/var/log/xen

ip link set lo up
hostname "$HOST_NAME"

inroot() { /bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$AGENT_HOME" /bin/chroot $R "$@"; }

say "uptime $(cut -d' ' -f1 /proc/uptime)s: starting xenstored"
inroot xenstored --pid-file /run/xenstored.pid || fail "xenstored did not start"
for i in $(seq 1 100); do [ -S $R/run/xenstored/socket ] && break; sleep 0.1; done
inroot xen-init-dom0 || fail "xen-init-dom0 failed"
inroot xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen || fail "xenconsoled did not start"

${FIND_CONTROL_PORT}say "uptime $(cut -d' ' -f1 /proc/uptime)s: starting the agent ($NODE on $CTL)"
inroot "$NODE" /run/bulkhead/agent.js "$CTL"
say "agent exited ($?); powering off"
sync
reboot -f
`;
