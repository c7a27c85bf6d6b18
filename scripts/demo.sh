#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds ickpt and runs the demo: by default the
# distributed one (`ickpt demo --workers 4`: a throw-away etcd, two coordinators, four workers, a
# worker and the leading coordinator SIGKILLed, the final state verified against a failure-free
# run). `--single` runs the single-process demo instead (a 1 GiB simulation checkpointed,
# SIGKILLed, restored and verified). Other arguments go to `ickpt demo` (e.g. --seed 7 --json,
# or --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ickpt_cli
if [[ "${1:-}" == "--single" ]]; then
  shift
  exec build/src/cli/ickpt demo "$@"
fi
# Four workers unless the caller chose how many (`--workers 2` must not become two flags).
for arg in "$@"; do
  [[ $arg == --workers || $arg == --workers=* ]] && exec build/src/cli/ickpt demo "$@"
done
exec build/src/cli/ickpt demo --workers 4 "$@"
