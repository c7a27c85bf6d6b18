#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan, and runs each for a bounded time
# on a copy of its seed corpus (fuzz/corpus/<target>/, never written to). Fails if any target finds
# a crash, leak, timeout, out-of-memory or undefined behaviour; the input that did it is kept as
# BUILD_DIR/fuzz-artifacts/<target>/crash-* (reproduce: BUILD_DIR/fuzz/<target> <file>).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET (30)] [BUILD_DIR (build-fuzz)]
#
# Environment: ICKPT_FUZZ_TARGETS (space-separated subset, default all), ICKPT_FUZZ_RUNS (also stop
# a target after this many executions, for long runs), ICKPT_FUZZ_SKIP_SETUP=1 (no setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=${2:-build-fuzz}
all_targets=(config_fuzz commit_record_fuzz manifest_fuzz keyed_records_fuzz pack_fuzz
  pack_index_fuzz keys_fuzz parse_fuzz coding_fuzz repository_url_fuzz maintenance_objects_fuzz
  consolidation_record_fuzz epoch_record_fuzz etcd_codec_fuzz coord_protocol_fuzz
  s3_list_reply_fuzz s3_error_reply_fuzz s3_delete_reply_fuzz content_range_fuzz)
read -r -a targets <<<"${ICKPT_FUZZ_TARGETS:-${all_targets[*]}}"

[[ ${ICKPT_FUZZ_SKIP_SETUP:-0} == 1 ]] || bash scripts/setup.sh
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
# A build directory configured with the fuzz targets already (CI: build-asan, which
# `scripts/sanitize.sh asan` builds with clang, ASan, UBSan and the fuzzing instrumentation) is
# used as it is: only its fuzz targets are brought up to date. Otherwise configure one. The same
# clang build checks the lock annotations (-Wthread-safety, as scripts/sanitize.sh thread-safety
# does) of every library layer.
if ! grep -q '^ICKPT_BUILD_FUZZ:BOOL=ON$' "$build/CMakeCache.txt" 2>/dev/null; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DICKPT_BUILD_FUZZ=ON -DICKPT_BUILD_TESTS=OFF -DICKPT_BUILD_BENCH=OFF -DICKPT_BUILD_CLI=OFF \
    -DICKPT_WERROR=ON "-DCMAKE_CXX_FLAGS=-Wthread-safety -Werror=thread-safety" \
    -DICKPT_SANITIZE=address,undefined >/dev/null
fi
cmake --build "$build" -j"$jobs" --target ickpt_util ickpt_store ickpt_repo ickpt_state ickpt_ckpt \
  ickpt_coord \
  "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/ickpt-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
total_execs=0
start=$SECONDS
printf '%-20s %12s %10s %8s  %s\n' target executions exec/s seconds result
for t in "${targets[@]}"; do
  [[ -d fuzz/corpus/$t ]] || { echo "fuzz.sh: no seed corpus fuzz/corpus/$t" >&2; exit 1; }
  # The fuzzer adds what it finds to its corpus directory: give it a copy.
  cp -r "fuzz/corpus/$t" "$work/$t"
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$artifacts"
  extra=()
  [[ -n ${ICKPT_FUZZ_RUNS:-} ]] && extra+=("-runs=$ICKPT_FUZZ_RUNS")
  t0=$SECONDS
  rc=0
  "$build/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${extra[@]}" "$work/$t" \
    >"$work/$t.log" 2>&1 || rc=$?
  elapsed=$((SECONDS - t0))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
  if [[ -z $execs ]]; then  # no final stats after a crash: take the last status line "#N ..."
    execs=$(sed -n 's/^#\([0-9]*\)\s.*/\1/p' "$work/$t.log" | tail -1)
    rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' "$work/$t.log" | tail -1)
  fi
  execs=${execs:-0}
  total_execs=$((total_execs + execs))
  if ((rc == 0)); then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed+=("$t")
    cp "$work/$t.log" "$artifacts/log.txt"
    echo "---- $t: last lines of the log ($artifacts/log.txt) ----" >&2
    tail -40 "$work/$t.log" >&2
    ls "$artifacts" >&2
  fi
  printf '%-20s %12s %10s %8s  %s\n' "$t" "$execs" "${rate:-?}" "$elapsed" "$result"
done
echo "fuzz: ${#targets[@]} targets, $total_execs executions in $((SECONDS - start)) s," \
  "${#failed[@]} failed${failed:+: ${failed[*]}}"
((${#failed[@]} == 0))
