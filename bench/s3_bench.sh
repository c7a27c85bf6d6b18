#!/usr/bin/env bash
# The S3 benchmark of issue 14 (bench/s3_bench.cc; docs/benchmarks.md, "Repositories on S3 (issue
# 14)") on a throw-away Ceph RADOS Gateway on loopback: starts one with scripts/ceph_cluster.sh in
# a temporary directory, creates the bucket, runs s3_bench against it with the cluster's endpoint,
# keys and daemon PIDs in the environment, and stops the cluster on exit (also on an error or ^C).
# Everything s3_bench prints goes to the output file too.
#
#   bench/s3_bench.sh [OUTPUT_FILE] [-- extra s3_bench flags]
#
#   bench/s3_bench.sh                                   # 1 GiB, 3 rounds: about 5-10 minutes
#   ICKPT_BENCH_SIZE=64MiB bench/s3_bench.sh -- --objects 16 --rounds 1   # smoke test, < 1 min
#
# Environment: ICKPT_BENCH_SIZE (default 1GiB; the region and the s3cmd object), the other
# ICKPT_BENCH_* variables of bench/s3_bench.cc, BUILD_DIR (default build-bench; s3_bench is built
# there, RelWithDebInfo, if it is missing), JOBS (build parallelism, default 2: the machine is
# shared), ICKPT_S3_MEMSTORE_BYTES (the OSD's memstore; default max(2 GiB, 8 x size + 1 GiB)).
# Memstore takes memory as data arrives, and a full memstore makes writes hang rather than fail:
# a run stores at most about 2 x size at once (the repository kept for the restores, and the one
# being persisted or the s3cmd object), or the throughput objects (256 MiB by default), plus
# whatever the gateway has not yet collected, so the default leaves 4x or more of headroom.
# ICKPT_S3_RGW_FRONTEND_OPTIONS (default none): options appended to the gateway's
# `rgw frontends = beast endpoint=...` line before the run (radosgw is restarted with them), e.g.
# `tcp_nodelay=1`: RGW's beast front end leaves Nagle's algorithm on by default, and a reply with a
# small body then waits for the client's delayed ACK (about 40 ms on Linux): see docs/benchmarks.md.
# Needs Ceph (radosgw, ceph-mon, ceph-osd) and s3cmd: scripts/setup.sh installs them.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
size="${ICKPT_BENCH_SIZE:-1GiB}"
out="$build/s3-$(date -u +%Y%m%dT%H%M%SZ).txt"
if [[ $# -gt 0 && $1 != "--" ]]; then
  out=$1
  shift
fi
[[ "${1:-}" == "--" ]] && shift

fail() {
  echo "s3_bench.sh: error: $*" >&2
  exit 1
}
command -v s3cmd >/dev/null || fail "s3cmd is not installed (scripts/setup.sh installs it)"
command -v radosgw >/dev/null || fail "Ceph's radosgw is not installed (scripts/setup.sh)"

# Bytes of "64MiB", "1GiB", "1G", "4096".
to_bytes() {
  local v=$1 n unit
  [[ $v =~ ^([0-9]+)[[:space:]]?([A-Za-z]*)$ ]] || fail "size '$v' is not N[KiB|MiB|GiB]"
  n=${BASH_REMATCH[1]}
  unit=$(tr '[:upper:]' '[:lower:]' <<<"${BASH_REMATCH[2]}")
  case $unit in
    "" | b) echo "$n" ;;
    k | kib) echo $((n << 10)) ;;
    m | mib) echo $((n << 20)) ;;
    g | gib) echo $((n << 30)) ;;
    kb) echo $((n * 1000)) ;;
    mb) echo $((n * 1000000)) ;;
    gb) echo $((n * 1000000000)) ;;
    *) fail "size '$v': unknown unit" ;;
  esac
}
size_bytes=$(to_bytes "$size")
memstore=${ICKPT_S3_MEMSTORE_BYTES:-$((8 * size_bytes + (1 << 30)))}
((memstore >= 2 << 30)) || memstore=$((2 << 30))

if [[ ! -x $build/bench/s3_bench ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DICKPT_BUILD_TESTS=OFF -DICKPT_BUILD_CLI=OFF -DICKPT_BUILD_BENCH=ON >/dev/null
  cmake --build "$build" --target s3_bench -j"${JOBS:-2}"
fi
mkdir -p "$(dirname "$out")"

cluster=$(mktemp -d "${TMPDIR:-/tmp}/ickpt-s3bench-ceph.XXXXXX")
cleanup() {
  bash "$root/scripts/ceph_cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
  rm -rf "$cluster"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --owner-pid: the cluster's watchdog kills it if this script dies without running its trap.
bash "$root/scripts/ceph_cluster.sh" start "$cluster" --memstore-bytes "$memstore" \
  --owner-pid $$ >/dev/null
if [[ -n ${ICKPT_S3_RGW_FRONTEND_OPTIONS:-} ]]; then
  sed -i "s|^rgw frontends = .*|& $ICKPT_S3_RGW_FRONTEND_OPTIONS|" "$cluster/ceph.conf"
  bash "$root/scripts/ceph_cluster.sh" kill-rgw "$cluster"
  bash "$root/scripts/ceph_cluster.sh" start-rgw "$cluster" >/dev/null
fi
# shellcheck disable=SC1091  # written by ceph_cluster.sh start (start-rgw updates RGW_PID)
source "$cluster/cluster.env"
export ICKPT_RGW_ENDPOINT ICKPT_RGW_ACCESS_KEY ICKPT_RGW_SECRET_KEY ICKPT_RGW_REGION RGW_PID OSD_PID
export ICKPT_RGW_BUCKET=${ICKPT_RGW_BUCKET:-ickpt-bench}
export ICKPT_BENCH_SIZE=$size
bash "$root/scripts/ceph_cluster.sh" make-bucket "$cluster" "$ICKPT_RGW_BUCKET" >/dev/null

{
  echo "# bench: s3_bench  size: $size  memstore: $memstore bytes"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  kernel: $(uname -r)"
  echo "# commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "(plus uncommitted changes: $(git -C "$root" status --porcelain 2>/dev/null | wc -l) files)"
  echo "# ceph: $(ceph --version 2>/dev/null | cut -d' ' -f1-3)  $(s3cmd --version)"
  echo "# gateway: $(grep '^rgw frontends' "$cluster/ceph.conf")"
  echo "# command: ICKPT_BENCH_SIZE=$size $build/bench/s3_bench $*"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
"$build/bench/s3_bench" "$@" 2>&1 | tee -a "$out"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
