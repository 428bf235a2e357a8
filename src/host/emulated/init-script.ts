/**
 * /init of the emulated host's initramfs (busybox sh as PID 1): mount the real host's root over
 * virtio-9p read-only, put a tmpfs overlay on it, mount the API filesystems inside, chroot and run
 * the control agent under the host's own node. When the agent exits, power off.
 */

export interface InitSettings {
  /** Absolute path of node on the real host (the same path inside). */
  nodePath: string;
  /** HOME for the agent (the real host's, so ~/.cache/bulkhead resolves the same). */
  home: string;
  /** 9p mount tag of the shared root. */
  mountTag: string;
  /** 9p cache mode: `loose` (fast; sees host changes made before boot) or `none`/`mmap`. */
  cache9p: string;
  msize: number;
  hostname: string;
  /** Read-write 9p shares mounted at the same path inside (paths without spaces). */
  writable?: readonly { tag: string; path: string }[];
}

export function envFile(s: InitSettings): string {
  const q = (v: string | number) => `'${String(v).replace(/'/g, `'\\''`)}'`;
  return [
    `NODE=${q(s.nodePath)}`,
    `AGENT_HOME=${q(s.home)}`,
    `MOUNT_TAG=${q(s.mountTag)}`,
    `CACHE_9P=${q(s.cache9p)}`,
    `MSIZE=${q(s.msize)}`,
    `HOST_NAME=${q(s.hostname)}`,
    `RW_SHARES=${q((s.writable ?? []).map((w) => `${w.tag}:${w.path}`).join(' '))}`,
    '',
  ].join('\n');
}

/** The start of every test host's /init: busybox as the toolbox, /proc /sys /dev, the settings, say/fail. */
export const INIT_PREAMBLE = `/bin/busybox mkdir -p /proc /sys /dev /mnt/host /mnt/rw /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
. /etc/bulkhead.env

say() { echo "bulkhead-init: $*"; }
fail() { say "FAILED: $*"; sync; reboot -f; }

`;

/**
 * The new root: the real host's root over 9p (read-only) under a tmpfs overlay, the writable shares at
 * their own paths, the API filesystems, and an empty /run ($R is the new root).
 */
export const MOUNT_NEW_ROOT = `mount -t 9p -o "trans=virtio,version=9p2000.L,ro,msize=$MSIZE,cache=$CACHE_9P" "$MOUNT_TAG" /mnt/host \\
  || fail "cannot mount the host root over 9p (tag $MOUNT_TAG)"
mount -t tmpfs -o mode=0755 rw /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot \\
  || fail "cannot mount the overlay"

R=/newroot
for share in $RW_SHARES; do
  tag=\${share%%:*}; dir=\${share#*:}
  mkdir -p "$R$dir"
  mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE,cache=none" "$tag" "$R$dir" \\
    || fail "cannot mount the writable share $dir"
done
mount -t proc proc $R/proc || fail "no /proc in the new root"
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
ln -sf pts/ptmx $R/dev/ptmx
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
# The real host's /run (its sockets, pid files) means nothing in here.
mount -t tmpfs -o mode=0755 run $R/run
`;

/** Sets CTL to the virtio-serial port the control channel runs over. */
export const FIND_CONTROL_PORT = `CTL=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = bulkhead.ctl ] && CTL=/dev/\${p##*/}
done
[ -n "$CTL" ] || fail "no virtio-serial port named bulkhead.ctl"

`;

export const INIT_SCRIPT = `#!/bin/busybox sh
# bulkhead emulated host: PID 1 of the initramfs (generated from src/host/emulated/init-script.ts).
${INIT_PREAMBLE}say "uptime $(cut -d' ' -f1 /proc/uptime)s: mounting the host root"
${MOUNT_NEW_ROOT}mkdir -p $R/run/bulkhead
cp /agent.js $R/run/bulkhead/agent.js

ip link set lo up
hostname "$HOST_NAME"

${FIND_CONTROL_PORT}say "uptime $(cut -d' ' -f1 /proc/uptime)s: starting the agent ($NODE on $CTL)"
/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$AGENT_HOME" \\
  /bin/chroot $R "$NODE" /run/bulkhead/agent.js "$CTL"
say "agent exited ($?); powering off"
sync
reboot -f
`;
