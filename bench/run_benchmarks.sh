#!/usr/bin/env bash
# Builds the benchmarks (Release) and runs them, writing everything they print to a file.
#
#   bench/run_benchmarks.sh [OUTPUT_FILE] [-- extra checkpoint_bench flags]
#
# Environment: BENCHES (default "checkpoint tracker": checkpoint_bench, then tracker_bench; also
# keyed_state and keyed_checkpoint, configured by ICKPT_BENCH_ENTRIES and ICKPT_BENCH_REPS, and gc,
# configured by ICKPT_BENCH_GC_* and ICKPT_BENCH_ROUNDS as bench/gc_bench.cc says),
# ICKPT_BENCH_SIZE (default 1GiB; 64MiB is the quick mode, < 1 minute for checkpoint_bench),
# ICKPT_BENCH_DIR (default /tmp), ICKPT_BENCH_ROUNDS (default 3), ICKPT_BENCH_DEPTH (default 100),
# tracker_bench: ICKPT_BENCH_REPS (default 5), ICKPT_BENCH_LOOP_SECONDS (default 5),
# ICKPT_BENCH_LOOP_ROUNDS (default 2), ICKPT_BENCH_TRACKERS (default: all that work here),
# BUILD_DIR (default build-bench), JOBS (default 2: the machine is shared).
# coord_scale (coordination at scale, issue 16; etcd on loopback): ICKPT_BENCH_COORD_SIZES (default
# 4,64,1024, about 16 min here, 10 of them the start timeout at 1,024; ICKPT_BENCH_COORD_SIZES=4,64
# is the quick mode, about 5 min),
# ICKPT_BENCH_COORD_CHECKPOINTS (default 20), and the other ICKPT_BENCH_COORD_* of
# bench/coord_scale_bench.cc.
# Cold restores drop the page cache (needs root); without it they are reported as unavailable.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
benches="${BENCHES:-checkpoint tracker}"
out="${1:-$build/benchmarks-$(date -u +%Y%m%dT%H%M%SZ).txt}"
shift || true
[[ "${1:-}" == "--" ]] && shift

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DICKPT_BUILD_TESTS=OFF -DICKPT_BUILD_CLI=OFF -DICKPT_BUILD_BENCH=ON >/dev/null
targets=()
for b in $benches; do targets+=("${b}_bench"); done
cmake --build "$build" --target "${targets[@]}" -j"${JOBS:-2}"

{
  echo "# benches: $benches"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  kernel: $(uname -r)"
  echo "# commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
for b in $benches; do
  if [[ "$b" == coord_scale ]]; then
    echo "# command: ICKPT_BENCH_COORD_SIZES=${ICKPT_BENCH_COORD_SIZES:-4,64,1024}" \
      "ICKPT_BENCH_COORD_CHECKPOINTS=${ICKPT_BENCH_COORD_CHECKPOINTS:-20} $build/bench/coord_scale_bench" |
      tee -a "$out"
    echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
    "$build/bench/coord_scale_bench" 2>&1 | tee -a "$out"
  elif [[ "$b" == checkpoint ]]; then
    echo "# command: ICKPT_BENCH_SIZE=${ICKPT_BENCH_SIZE:-1GiB} $build/bench/checkpoint_bench $*" |
      tee -a "$out"
    "$build/bench/checkpoint_bench" "$@" 2>&1 | tee -a "$out"
  else
    # Dirty tracking (issue 3); configured by the environment only.
    echo "# command: ICKPT_BENCH_SIZE=${ICKPT_BENCH_SIZE:-1GiB} $build/bench/${b}_bench" |
      tee -a "$out"
    echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
    "$build/bench/${b}_bench" 2>&1 | tee -a "$out"
  fi
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
echo "output written to $out"
