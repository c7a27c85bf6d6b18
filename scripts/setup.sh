#!/usr/bin/env bash
# Installs every build and test dependency of ickpt from Debian 12's packages. Idempotent: a package
# already installed is left alone, and apt-get runs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libzstd-dev libxxhash-dev libssl-dev
  libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  clang-14 libclang-rt-14-dev
  etcd-server etcd-client libcurl4-openssl-dev
  # The S3 store (src/store/s3_*): XML replies; and a real single-node Ceph RADOS Gateway that the
  # tests and the demo start on loopback (scripts/ceph_cluster.sh), with s3cmd for the benchmark.
  libpugixml-dev ceph-mon ceph-osd radosgw s3cmd curl jq
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present" >&2
fi
