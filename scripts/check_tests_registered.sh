#!/usr/bin/env bash
# Fails when a *_test.cc file exists in the tree but is not compiled into any test target.
set -euo pipefail
build=${1:-build}
missing=0
for f in $(git ls-files '*_test.cc'); do
  if ! grep -rqs --include='*.ninja' --include='Makefile' --include='*.make' "$(basename "$f")" "$build"; then
    echo "not registered with any test target: $f" >&2
    missing=1
  fi
done
exit $missing
