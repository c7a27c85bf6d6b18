#!/usr/bin/env bash
# `ickpt demo` on a repository in S3 (docs/s3.md), then the maintenance commands on it: what CI runs
# against the shared Ceph RADOS Gateway of a CTest run (the rgw fixture, src/CMakeLists.txt).
#
#   scripts/s3_demo_test.sh ICKPT_BINARY CLUSTER_DIR [SIZE]
#
# CLUSTER_DIR is a directory `scripts/ceph_cluster.sh start` wrote cluster.env into. Creates a
# bucket of its own (ickpt never creates buckets), runs the demo there (a simulation killed with
# SIGKILL and restarted from its latest checkpoint, checked bit-identical), then `ickpt log`,
# `ickpt verify --data`, `ickpt gc` and `ickpt verify` again, and checks that a missing bucket is
# exit 4 naming it. Exits 0 when Ceph is not installed (and says so): the test then has nothing to
# run against.
set -euo pipefail
ickpt=$1
cluster=$2
size=${3:-64MiB}
here=$(cd "$(dirname "$0")" && pwd)

if [[ ! -f $cluster/cluster.env ]]; then
  if [[ ! -x /usr/bin/radosgw ]]; then
    echo "s3_demo_test: Ceph is not installed; nothing to test"
    exit 0
  fi
  echo "s3_demo_test: $cluster/cluster.env is missing: the rgw fixture did not start" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$cluster/cluster.env"
# The store takes its credentials from the standard AWS variables, never from the URL.
export AWS_ACCESS_KEY_ID=$ICKPT_RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$ICKPT_RGW_SECRET_KEY
bucket=demo-$(date +%s)-$$
bash "$here/ceph_cluster.sh" make-bucket "$cluster" "$bucket" >/dev/null
repo="s3://$bucket/job1?endpoint=$ICKPT_RGW_ENDPOINT&region=$ICKPT_RGW_REGION"

step() { echo "=== s3_demo_test: $*"; }

step "ickpt demo --repo $repo --size $size"
"$ickpt" demo --repo "$repo" --size "$size" --seed 14

step "ickpt log"
"$ickpt" log --repo "$repo"
step "ickpt verify --data"
"$ickpt" verify --repo "$repo" --data
step "ickpt gc, then verify"
"$ickpt" gc --repo "$repo"
"$ickpt" verify --repo "$repo"

step "a missing bucket is exit 4, naming it"
rc=0
out=$("$ickpt" log --repo "s3://no-such-bucket-$$?endpoint=$ICKPT_RGW_ENDPOINT" 2>&1) || rc=$?
if [[ $rc -ne 4 || $out != *no-such-bucket-$$* ]]; then
  echo "s3_demo_test: expected exit 4 naming the bucket, got $rc: $out" >&2
  exit 1
fi
step "passed"
