#!/usr/bin/env bash
# Installs the Debian packages bulkhead needs to build, test and benchmark, then the npm packages.
# Idempotent and quick when everything is present: apt is only consulted for what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # the C core, its ASan/UBSan tests and fuzz targets; musl for the small static in-zone agent
  build-essential clang libclang-rt-14-dev musl-tools
  # guest kernels from Debian's linux-source-6.12, and the initramfs of the emulated host
  flex bison bc libelf-dev libssl-dev cpio xz-utils rsync busybox-static
  # the emulated virtualization host (QEMU TCG with emulated AMD SVM), and the Xen test host (its Xen 4.17
  # and dom0 kernel packages are fetched with apt-get download into the cache, never installed)
  qemu-system-x86
  # root filesystem images: erofs from OCI images, zstd layers, test layouts, archives and a local registry
  e2fsprogs erofs-utils zstd umoci skopeo docker-registry openssl
  # benchmark baselines: Docker, runc, crun, gVisor
  docker.io runc crun runsc iproute2 iptables
  # renders the report's chart.svg to PNG in the report test
  librsvg2-bin
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "install-deps: Debian packages present" >&2
fi

echo "install-deps: npm ci" >&2
npm ci --no-audit --no-fund >&2
