#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds every component with warnings as errors and
# runs every test. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
# -O2 with line tables (-g1) rather than full debug information: backtraces and sanitizer reports
# keep file and line, and the build takes about a third less (src/ckpt/fault_test.cc: 14.9 s -> 9.5 s).
flags="-O2 -g1 -DNDEBUG"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICKPT_WERROR=ON \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$flags" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$flags"
start=$SECONDS
cmake --build build -j"$jobs"
echo "test.sh: build $((SECONDS - start)) s" >&2
# Every *_test.cc must be registered with CTest (docs/testing.md): fail if one is not built into a
# test.
bash scripts/check_tests_registered.sh build
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)
