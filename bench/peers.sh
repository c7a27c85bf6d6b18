#!/usr/bin/env bash
# ickpt side by side with restic, borg and fio, in one run: on one generated state file, full and
# incremental checkpoint (backup) time and stored bytes of ickpt, restic and borg on the same bytes
# and the same changed pages, their restore times with a cold and a warm page cache, and fio's
# sequential write and read of the same size on the same file system. Prints a table and the
# ratios per round; everything it prints goes to the output file too.
#
#   bench/peers.sh [OUTPUT_FILE]      (default $BUILD_DIR/peers-<UTC timestamp>.txt)
#
# Environment: ICKPT_PEERS_SIZE (default 1GiB; 64MiB is a quick check), ICKPT_PEERS_DIR (default
# /var/tmp: a fresh directory is made inside it for the state, the repositories and fio's file,
# and removed at exit), ICKPT_PEERS_ROUNDS (default 1; round r uses seed r), ICKPT_PEERS_FRACTION
# (fraction of the 4 KiB pages changed for the incremental, default 0.01), BUILD_DIR (default
# build-bench), JOBS (build parallelism, default 2: the machine is shared).
#
# Installs restic, borgbackup and fio from Debian's packages when missing (needs root), and builds
# bench/peers_driver (Release) into BUILD_DIR. Per round:
#   1. peers_driver generate: the state (first half random, second half text-like records).
#   2. fio: sequential write of the same size (bs 1M, psync, buffered, end_fsync=1), then, after
#      dropping the page cache, sequential read of that file.
#   3. ickpt: peers_driver checkpoint: reads the state into a region (not timed), a full
#      checkpoint, the change below applied in memory (not timed), an incremental checkpoint; the
#      times are Checkpoint() + Wait() inside the process, stored bytes from the commit records.
#   4. restic (repository v2 defaults: zstd auto) and borg (--encryption=none, defaults: lz4): a
#      full backup of the state file, timed as whole commands (start-up, repository open and lock
#      included); stored bytes = du -sb of the repository after it.
#   5. peers_driver mutate: the same pages and bytes the driver changed in memory, now in the file
#      (same fraction and seed); restic and borg incremental backups; stored = growth of du -sb.
#   6. restores of the latest (incremental) checkpoint/snapshot, cold (page cache dropped first,
#      when possible) and warm (again, right after): ickpt into memory (peers_driver restore,
#      timing Restore() only, bytes verified), restic and borg into a file (whole commands, files
#      compared with cmp afterwards, not timed).
# Between the steps `sync`, so that one tool's write-back does not land in the next one's time.
# The state file is in the page cache when restic and borg back it up (it was just written), as
# ickpt's state is in memory. "cores" is CPU time (user + system) over wall time of what was timed.
# Dropping the page cache needs root and a writable /proc/sys/vm/drop_caches; without it the cold
# numbers are warm-ish, and the output says so.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
size="${ICKPT_PEERS_SIZE:-1GiB}"
base="${ICKPT_PEERS_DIR:-/var/tmp}"
rounds="${ICKPT_PEERS_ROUNDS:-1}"
fraction="${ICKPT_PEERS_FRACTION:-0.01}"
jobs="${JOBS:-2}"
out="${1:-$build/peers-$(date -u +%Y%m%dT%H%M%SZ).txt}"

fail() {
  echo "peers.sh: error: $*" >&2
  exit 1
}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || fail "ICKPT_PEERS_ROUNDS=$rounds: not a positive integer"
[[ -d "$base" ]] || fail "ICKPT_PEERS_DIR=$base: no such directory"

# --- the peers ---------------------------------------------------------------------------------
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
command -v fio >/dev/null || missing+=(fio)
command -v python3 >/dev/null || missing+=(python3)  # reads the JSON (borgbackup needs it too)
if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -ne 0 ]]; then
    fail "missing ${missing[*]}: run as root (this script installs them with apt-get), or" \
      "install them first: apt-get install ${missing[*]}"
  fi
  echo "peers.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
fi

# --- ickpt's driver ----------------------------------------------------------------------------
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DICKPT_BUILD_TESTS=OFF -DICKPT_BUILD_CLI=OFF -DICKPT_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target peers_driver -j"$jobs"
driver="$build/bench/peers_driver"

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$base/ickpt-peers-XXXXXX")"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Nothing prompts, nothing is written outside $tmp.
export RESTIC_PASSWORD=ickpt-peers
export RESTIC_CACHE_DIR="$tmp/restic-cache"
export BORG_BASE_DIR="$tmp/borg-base"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_PASSPHRASE=""

# --- helpers -----------------------------------------------------------------------------------

# json FILE KEY[.KEY...]: one value of a JSON document (numeric keys index arrays).
json() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1" "$2"
}

# calc EXPR: awk arithmetic, printed with %.6g.
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
# ratio A B [FORMAT]: A / B, or n/a when B is 0.
ratio() {
  awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" \
    'BEGIN { if (b == 0) printf "n/a"; else printf f, a / b }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

cold_note=""
# Drops the page cache (after writing it back); says once when it cannot.
drop_caches() {
  sync
  if [[ -w /proc/sys/vm/drop_caches ]] && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
    return 0
  fi
  if [[ -z "$cold_note" ]]; then
    cold_note=" (page cache NOT dropped: no root or read-only /proc/sys; cold numbers are warm-ish)"
    echo "# note:$cold_note"
  fi
}

# timed NAME COMMAND...: runs COMMAND with its stdout in $tmp/NAME.out and stderr in
# $tmp/NAME.err; sets t_real (wall seconds) and t_cpu (user + system seconds of it and its
# children). A failure shows both and ends the run.
timed() {
  local name="$1"
  shift
  local TIMEFORMAT='%R %U %S' report rc=0 user sys
  report="$({ time "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>&1)" || rc=$?
  if ((rc != 0)); then
    echo "peers.sh: error: $name failed (exit $rc): $*" >&2
    cat "$tmp/$name.out" "$tmp/$name.err" >&2
    exit 1
  fi
  read -r t_real user sys <<<"$report"
  t_cpu="$(calc "$user + $sys")"
}

# in_dir DIR COMMAND...: runs COMMAND in DIR (borg extract writes into the current directory).
in_dir() {
  cd "$1"
  shift
  "$@"
}

# Restores the latest backup of peer $1 (restic, borg) with the command that follows into $target,
# cold (page cache dropped first) then warm, recording the times in cold[], cold_cpu[] and warm[],
# and checks the restored file against $state.
restore_peer() {
  local tool=$1 temp
  shift
  for temp in cold warm; do
    rm -rf "$target"
    mkdir -p "$target"
    [[ "$temp" == cold ]] && drop_caches
    timed "${tool}_restore_$temp" "$@"
    if [[ "$temp" == cold ]]; then
      cold[$tool]="$t_real" cold_cpu[$tool]="$t_cpu"
    else
      warm[$tool]="$t_real"
    fi
    same "$state" "$target$state"
  done
}

du_bytes() { du -sb "$1" | cut -f1; }

# same FILE1 FILE2: byte-equal, or the run ends.
same() {
  cmp -s "$1" "$2" || fail "$2 differs from $1 ($(cmp "$1" "$2" 2>&1 | head -1))"
}

table_row() { printf '%-7s %8s %9s %5s %8s %9s %5s %9s %5s %9s\n' "$@"; }
# ratio_row WHAT ICKPT RESTIC BORG
ratio_row() {
  printf '  %-26s restic/ickpt %7s   borg/ickpt %7s\n' "$1" "$(ratio "$3" "$2")" \
    "$(ratio "$4" "$2")"
}

# --- one round ---------------------------------------------------------------------------------
round() {
  local r="$1"
  local dir="$tmp/round-$r"
  local state="$dir/state.bin"
  local fio_file="$dir/fio.dat"
  local target="$dir/restore"
  mkdir -p "$dir"
  echo
  echo "## round $r (seed $r)"

  "$driver" generate --out "$state" --size "$size" --seed "$r" >"$tmp/generate.out"
  local bytes random_bytes
  bytes="$(json "$tmp/generate.out" bytes)"
  random_bytes="$(json "$tmp/generate.out" random_bytes)"

  # 1. fio on the same file system.
  sync
  timed fio_write fio --name=seqwrite --filename="$fio_file" --size="$bytes" --rw=write --bs=1M \
    --ioengine=psync --end_fsync=1 --output-format=json
  local fio_write fio_read
  fio_write="$(calc "$(json "$tmp/fio_write.out" jobs.0.write.bw_bytes) / 1048576")"
  drop_caches
  timed fio_read fio --name=seqread --filename="$fio_file" --size="$bytes" --rw=read --bs=1M \
    --ioengine=psync --output-format=json
  fio_read="$(calc "$(json "$tmp/fio_read.out" jobs.0.read.bw_bytes) / 1048576")"
  rm -f "$fio_file"

  # 2. ickpt: full, the change in memory, incremental.
  sync
  timed ickpt_checkpoint "$driver" checkpoint --repo "$dir/ickpt" --file "$state" \
    --fraction "$fraction" --seed "$r"
  local ck="$tmp/ickpt_checkpoint.out"
  local -A full incr full_cpu incr_cpu full_st incr_st cold cold_cpu warm
  full[ickpt]="$(json "$ck" full_seconds)"
  full_cpu[ickpt]="$(json "$ck" full_cpu_seconds)"
  full_st[ickpt]="$(json "$ck" full_stored_bytes)"
  incr[ickpt]="$(json "$ck" incremental_seconds)"
  incr_cpu[ickpt]="$(json "$ck" incremental_cpu_seconds)"
  incr_st[ickpt]="$(json "$ck" incremental_stored_bytes)"
  local ickpt_du
  ickpt_du="$(du_bytes "$dir/ickpt")"
  [[ "$(json "$ck" incremental_kind)" == incremental ]] ||
    echo "# note: ickpt's policy chose a $(json "$ck" incremental_kind) checkpoint for the change"

  # 3. restic and borg: full backups.
  restic -r "$dir/restic" init >"$tmp/restic_init.out" 2>&1 ||
    fail "restic init: $(cat "$tmp/restic_init.out")"
  borg init --encryption=none "$dir/borg" >"$tmp/borg_init.out" 2>&1 ||
    fail "borg init: $(cat "$tmp/borg_init.out")"
  local restic_du1 borg_du1
  sync
  timed restic_full restic -r "$dir/restic" backup "$state"
  full[restic]="$t_real" full_cpu[restic]="$t_cpu"
  restic_du1="$(du_bytes "$dir/restic")"
  full_st[restic]="$restic_du1"
  sync
  timed borg_full borg create "$dir/borg::full" "$state"
  full[borg]="$t_real" full_cpu[borg]="$t_cpu"
  borg_du1="$(du_bytes "$dir/borg")"
  full_st[borg]="$borg_du1"

  # 4. The same change in the file; incremental backups.
  "$driver" mutate --file "$state" --fraction "$fraction" --seed "$r" >"$tmp/mutate.out"
  local changed_pages
  changed_pages="$(json "$tmp/mutate.out" changed_pages)"
  [[ "$changed_pages" == "$(json "$ck" changed_pages)" ]] ||
    fail "mutate changed $changed_pages pages, the driver's checkpoint $(json "$ck" changed_pages)"
  sync
  timed restic_incr restic -r "$dir/restic" backup "$state"
  incr[restic]="$t_real" incr_cpu[restic]="$t_cpu"
  incr_st[restic]="$(($(du_bytes "$dir/restic") - restic_du1))"
  sync
  timed borg_incr borg create "$dir/borg::incremental" "$state"
  incr[borg]="$t_real" incr_cpu[borg]="$t_cpu"
  incr_st[borg]="$(($(du_bytes "$dir/borg") - borg_du1))"

  # 5. Restores of the latest checkpoint/snapshot: cold, then warm.
  local temp
  for temp in cold warm; do
    [[ "$temp" == cold ]] && drop_caches
    timed "ickpt_restore_$temp" "$driver" restore --repo "$dir/ickpt" --expect "$state"
    local v
    v="$(json "$tmp/ickpt_restore_$temp.out" restore_seconds)"
    if [[ "$temp" == cold ]]; then
      cold[ickpt]="$v"
      cold_cpu[ickpt]="$(json "$tmp/ickpt_restore_$temp.out" restore_cpu_seconds)"
    else
      warm[ickpt]="$v"
    fi
    [[ "$(json "$tmp/ickpt_restore_$temp.out" verified)" == True ]] ||
      fail "ickpt's restore was not verified"
  done
  restore_peer restic restic -r "$dir/restic" restore latest --target "$target"
  restore_peer borg in_dir "$target" borg extract "$dir/borg::incremental"
  rm -rf "$target"

  # --- the table --------------------------------------------------------------------------------
  echo
  echo "state: $(mib "$bytes") MiB ($(mib "$random_bytes") MiB random, the rest text-like" \
    "records); $changed_pages of $((bytes / 4096)) pages (fraction $fraction) changed for the" \
    "incremental; file system $(df --output=fstype "$dir" | tail -1);" \
    "ickpt tracker $(json "$ck" tracker)," \
    "persist threads $(json "$ck" persist_threads)"
  echo "restores verified: ickpt (by the driver), restic and borg (cmp with the state" \
    "file)$cold_note"
  table_row "" "full" "full" "" "incr" "incr" "" "restore" "" "restore"
  table_row tool "s" "MiB" cores "s" "MiB" cores "cold s" cores "warm s"
  local tool
  for tool in ickpt restic borg; do
    table_row "$tool" "$(printf %.3f "${full[$tool]}")" "$(mib "${full_st[$tool]}")" \
      "$(ratio "${full_cpu[$tool]}" "${full[$tool]}" %.1f)" "$(printf %.3f "${incr[$tool]}")" \
      "$(mib "${incr_st[$tool]}")" "$(ratio "${incr_cpu[$tool]}" "${incr[$tool]}" %.1f)" \
      "$(printf %.3f "${cold[$tool]}")" "$(ratio "${cold_cpu[$tool]}" "${cold[$tool]}" %.1f)" \
      "$(printf %.3f "${warm[$tool]}")"
  done
  echo "(ickpt: Checkpoint() + Wait() and Restore() inside one process, into and from memory;" \
    "restic, borg: whole commands, from and to a file. MiB stored: ickpt's commit records;" \
    "restic, borg: du -sb of the repository after the full, its growth by the incremental;" \
    "ickpt's repository is $(mib "$ickpt_du") MiB by du -sb)"
  echo "fio: sequential write $(printf %.1f "$fio_write") MiB/s (bs 1M, psync, buffered," \
    "end_fsync=1), sequential read $(printf %.1f "$fio_read") MiB/s (after dropping the cache)"
  echo
  echo "ratios (> 1: ickpt faster, or smaller):"
  ratio_row "full checkpoint time" "${full[ickpt]}" "${full[restic]}" "${full[borg]}"
  ratio_row "incremental time" "${incr[ickpt]}" "${incr[restic]}" "${incr[borg]}"
  ratio_row "restore time, cold cache" "${cold[ickpt]}" "${cold[restic]}" "${cold[borg]}"
  ratio_row "restore time, warm cache" "${warm[ickpt]}" "${warm[restic]}" "${warm[borg]}"
  ratio_row "stored bytes, full" "${full_st[ickpt]}" "${full_st[restic]}" "${full_st[borg]}"
  ratio_row "stored bytes, incremental" "${incr_st[ickpt]}" "${incr_st[restic]}" "${incr_st[borg]}"
  local write_rate read_rate
  write_rate="$(ratio "${full_st[ickpt]}" "$(calc "${full[ickpt]} * 1048576")" %.1f)"
  read_rate="$(ratio "$bytes" "$(calc "${cold[ickpt]} * 1048576")" %.1f)"
  echo "ickpt full checkpoint: $(mib "${full_st[ickpt]}") MiB stored in" \
    "$(printf %.3f "${full[ickpt]}") s = $write_rate MiB/s =" \
    "$(ratio "$(calc "$write_rate * 100")" "$fio_write" %.0f)% of fio's sequential write" \
    "(goal >= 80%)"
  echo "ickpt cold restore: $(mib "$bytes") MiB of state in $(printf %.3f "${cold[ickpt]}") s =" \
    "$read_rate MiB/s = $(ratio "$(calc "$read_rate * 100")" "$fio_read" %.0f)% of fio's" \
    "sequential read (goal >= 80%)"
  rm -rf "$dir"
}

main() {
  echo "# ickpt vs restic, borg and fio (bench/peers.sh)"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc: $(nproc)  kernel: $(uname -r)"
  local commit dirty=""
  commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git -C "$root" diff-index --quiet HEAD -- 2>/dev/null ||
    dirty=" (work tree has uncommitted changes)"
  echo "# commit: $commit$dirty"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# restic: $(restic version | head -1)"
  echo "# borg: $(borg --version | head -1)"
  echo "# fio: $(fio --version | head -1)"
  echo "# size: $size  rounds: $rounds  fraction: $fraction  dir: $tmp" \
    "($(df -h --output=fstype,avail "$tmp" | tail -1 | xargs))"
  local r
  for ((r = 1; r <= rounds; r++)); do
    round "$r"
  done
  echo
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main 2>&1 | tee "$out"
echo "output written to $out"
