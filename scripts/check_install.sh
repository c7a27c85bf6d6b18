#!/usr/bin/env bash
# Checks that the installed CMake package works for an application: builds ickpt (or reuses the
# build directory given as $1), installs it into a temporary prefix, then configures, builds and runs
# examples/basic against that prefix only.
#   scripts/check_install.sh [build-dir]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ickpt-install-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
jobs=${ICKPT_JOBS:-2}

if [[ $# -ge 1 && -n "$1" ]]; then
  build=$(cd "$1" && pwd)
else
  build="$work/build"
  cmake -S "$src" -B "$build" -G Ninja -DICKPT_BUILD_TESTS=OFF -DICKPT_BUILD_BENCH=OFF
fi
# Only what is installed: the libraries (ickpt_coord and every layer below it) and the CLI.
cmake --build "$build" -j"$jobs" --target ickpt_coord $(cmake --build "$build" --target help 2>/dev/null \
  | grep -q '^ickpt_cli' && echo ickpt_cli)
cmake --install "$build" --prefix "$work/prefix"

cmake -S "$src/examples/basic" -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix"
cmake --build "$work/example" -j"$jobs"
"$work/example/basic" "$work/repo"
# Run twice: the second run opens the existing repository and chains onto it.
"$work/example/basic" "$work/repo"
echo "install check passed"
