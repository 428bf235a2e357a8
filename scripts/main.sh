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
# Nested SVM under TCG sometimes takes the emulated host's own kernel down under a zone; the error
# then carries SERVER_UNAVAILABLE (the host went, not the zone's code). That is retried once, saying so.
zone_hello() {
  local err; err=$(mktemp)
  local rc=0
  bulkhead run --rm busybox -- sh -c 'echo "hello from zone $(hostname), kernel $(uname -r)"' 2> >(tee "$err" >&2) || rc=$?
  wait
  if [ "$rc" -ne 0 ] && grep -q '\[SERVER_UNAVAILABLE\]' "$err"; then rc=75; fi
  rm -f "$err"
  return "$rc"
}
rc=0
zone_hello || rc=$?
if [ "$rc" -eq 75 ]; then
  step "the emulated host was lost under the zone (above); once more on a fresh host"
  zone_hello
elif [ "$rc" -ne 0 ]; then
  exit "$rc"
fi

out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
step "benchmarks: zone vs bare, Docker, runc, crun, gVisor -> $out"
bulkhead bench --out "$out" "$@"
step "report: $out/report.md (chart: $out/chart.svg)"
