#!/usr/bin/env bash
# The main job on a fresh machine: install what bulkhead needs, build it, say what this host can run,
# build (or reuse) the guest and emulated-host kernels, run a zone, and run the benchmark suite into a report.
# Every step shows its progress; heavy results are cached under ~/.cache/bulkhead.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*" >&2; }
bulkhead() { node dist/cjs/cli/main.js "$@"; }

step "installing Debian and npm packages"
bash scripts/install-deps.sh

step "building the native addon and the TypeScript library"
npm run build >&2

step "what this host can run (bulkhead doctor)"
bulkhead doctor || true

step "zone kernel (cached under ~/.cache/bulkhead/kernels)"
bulkhead kernel build --config zone
step "emulated-host kernel"
bulkhead kernel build --config host

step "a zone: bulkhead run --rm busybox (inside the emulated host where /dev/kvm cannot boot zones)"
bulkhead run --rm busybox -- sh -c 'echo "hello from zone $(hostname), kernel $(uname -r)"'

out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
step "benchmarks: zone vs bare, Docker, runc, crun, gVisor -> $out"
bulkhead bench --out "$out" "$@"
step "report: $out/report.md (chart: $out/chart.svg)"
