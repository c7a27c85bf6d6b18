#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds every component with warnings as errors and
# runs every test. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICKPT_WERROR=ON
cmake --build build -j"$jobs"
# Every *_test.cc must be registered with CTest (docs/testing.md): fail if one is not built into a
# test.
bash scripts/check_tests_registered.sh build
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)
