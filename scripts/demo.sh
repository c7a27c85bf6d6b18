#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds ickpt and runs the demo: a simulation that is
# checkpointed, SIGKILLed, restored and verified bit-exact against an uninterrupted run.
# Extra arguments go to `ickpt demo` (e.g. --size 256MiB --steps 12 --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ickpt_cli
exec build/src/cli/ickpt demo "$@"
