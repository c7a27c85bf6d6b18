#!/usr/bin/env bash
# Builds checkpoint_bench (Release) and runs it, writing everything it prints to a file.
#
#   bench/run_benchmarks.sh [OUTPUT_FILE] [-- extra benchmark flags]
#
# Environment: ICKPT_BENCH_SIZE (default 1GiB; 64MiB is the quick mode, < 1 minute),
# ICKPT_BENCH_DIR (default /tmp), ICKPT_BENCH_ROUNDS (default 3), ICKPT_BENCH_DEPTH (default 100),
# BUILD_DIR (default build-bench), JOBS (default 2: the machine is shared).
# Cold restores drop the page cache (needs root); without it they are reported as unavailable.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
out="${1:-$build/checkpoint_bench-$(date -u +%Y%m%dT%H%M%SZ).txt}"
shift || true
[[ "${1:-}" == "--" ]] && shift

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DICKPT_BUILD_TESTS=OFF -DICKPT_BUILD_CLI=OFF -DICKPT_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target checkpoint_bench -j"${JOBS:-2}"

{
  echo "# command: ICKPT_BENCH_SIZE=${ICKPT_BENCH_SIZE:-1GiB} $build/bench/checkpoint_bench $*"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  kernel: $(uname -r)"
  echo "# commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
"$build/bench/checkpoint_bench" "$@" 2>&1 | tee -a "$out"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
echo "output written to $out"
