#!/usr/bin/env bash
# A throw-away single-node Ceph cluster with a RADOS Gateway (S3) on loopback, for tests, the demo
# and benchmarks. Everything (config, monmap, mon and osd data, logs, admin sockets, pid files,
# crash dumps, keyring) lives inside DIR; nothing is read from or written to /etc/ceph or /var.
#
# Usage:
#   ceph_cluster.sh start DIR [--memstore-bytes N] [--owner-pid PID]
#       Creates DIR and a cluster in it: one mon, one memstore OSD of N bytes (default 2 GiB), and
#       radosgw (beast) on 127.0.0.1 and a free port, plus an S3 user with a random key. Returns
#       once an authenticated ListBuckets answers 200, then writes DIR/cluster.env and prints the
#       same lines on stdout (progress goes to stderr):
#         ICKPT_RGW_ENDPOINT=http://127.0.0.1:PORT  ICKPT_RGW_ACCESS_KEY=...
#         ICKPT_RGW_SECRET_KEY=...  ICKPT_RGW_REGION=us-east-1
#         MON_PID=...  OSD_PID=...  RGW_PID=...
#       A full memstore makes writes hang rather than fail: size N at about 4x the data you store
#       (memstore takes memory as data arrives, not up front).
#       With --owner-pid, a background watchdog SIGKILLs everything once PID is gone, so a crashed
#       test leaves nothing behind (it is started first and also covers a `start` cut short).
#       Gives up after 60 s with the tail of the log that explains it, having stopped whatever it
#       started. Exit codes: 0 ready, 1 failed, 2 usage, 3 Ceph not installed.
#   ceph_cluster.sh stop DIR
#       SIGKILLs the daemons and the watchdog (SIGTERM takes seconds per daemon) and waits until
#       they are gone: afterwards `pgrep -f DIR` finds nothing. DIR is left in place.
#   ceph_cluster.sh kill-rgw DIR      SIGKILLs radosgw only (a gateway crash in mid-request).
#   ceph_cluster.sh start-rgw DIR     Starts radosgw again on the same port, waits until S3
#                                     answers, updates RGW_PID in DIR/cluster.env. A bucket
#                                     create within ~5 s of kill-rgw waits for the dead gateway's
#                                     watch to expire (object reads and writes do not).
#   ceph_cluster.sh make-bucket DIR NAME
#       Creates a bucket (signed path-style PUT /NAME; names are 3-63 lower-case characters). The
#       product never creates buckets; tests and the demo do, with this.
#
# Measured here (Debian 12, Ceph 16.2.15, 2 cores, `time ceph_cluster.sh start`): 3.3 s with the
# machine nearly idle; 3.9-4.6 s while other people's builds kept the load average at 5-6; two
# clusters started at the same time under that load, 6.0-7.5 s each. kill-rgw 0.2 s, start-rgw
# 0.6-1.0 s, stop 0.3-0.5 s. Under ctest, a test that starts and stops its own cluster: 5-8 s.
#
# Why it is built the way it is (more in /work/shared/PLATFORM.md, "A real S3 endpoint here"):
# - auth none everywhere, plus `ms mon client mode = crc` for radosgw: without it radosgw loops on
#   "get_initial_auth_request returned -13" and never serves. `client mount timeout` makes a
#   client that cannot reach the mon give up instead of hanging.
# - Fast paxos (0.05 s / 0.01 s): with the 1 s default, startup takes ~13 s and a bucket create
#   ~2 s.
# - A SIGKILLed radosgw leaves its watches on the control objects, and every metadata change (a
#   bucket or user create) waits for each watcher's ack: with the default 30 s watch timeout that
#   took ~28 s after a kill; `osd client watch timeout = 5` with 1 s client pings bounds it to ~5 s.
# - radosgw starts once the mon has logged the OSD's boot: started earlier, it created its first
#   pool and then idled ~4 s before going on.
# - Ports: the mon's and radosgw's are found by binding port 0 (the ephemeral range). The OSD binds
#   four msgr2 ports from its own window of 16 (`ms bind port min/max`) that was free when probed,
#   in 10000-32767: below the ephemeral range, so outgoing connections do not take them, and away
#   from Ceph's default 6800-7300 that concurrent clusters would share. Ceph skips a port taken
#   meanwhile, so losing a race only moves the OSD up its window. radosgw cannot do that: if its
#   port was taken meanwhile ("failed to bind address"), `start` retries with another port.
# - Daemons run in the foreground (-f) in the background of this script, so their PIDs are known.
#   A killed daemon stays a zombie until its parent reaps it (orphans' PID 1 here does so only
#   seconds later), so a zombie counts as gone. Before a kill, /proc/PID/cmdline must name DIR: a
#   recycled PID is left alone. `stop` finally kills any process whose command line names
#   DIR/ceph.conf (a radosgw-admin or ceph CLI cut short): that makes "nothing left" true.
set -euo pipefail

readonly TIMEOUT_S=60
readonly REGION=us-east-1
readonly EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")
readonly SELF

# The pyenv shim in some PATHs starts slowly and may pick another interpreter; Debian's is enough.
PYTHON=python3
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3

usage() {
  sed -n '2,/^# Measured/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

log() { echo "ceph_cluster: $*" >&2; }

# DIR's absolute physical path: daemons' command lines name it, and the kill checks match on it.
abs_dir() { (cd "$1" && pwd -P); }

# Prints a TCP port on 127.0.0.1 that was free just now (bound to port 0 and released).
free_port() {
  "$PYTHON" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Prints P such that ports P..P+COUNT-1 on 127.0.0.1 could all be bound just now, P in
# [10000, 32768-COUNT): below the ephemeral range, so outgoing connections do not take them.
free_port_window() {
  "$PYTHON" - "$1" <<'EOF'
import random, socket, sys
count = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(10000, 32768 - count)
    socks = []
    try:
        for p in range(base, base + count):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
        print(base)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit("no window of %d free ports in 10000-32767" % count)
EOF
}

# Prints COUNT random characters from ALPHABET. (Not `tr </dev/urandom | head`: under pipefail,
# tr's SIGPIPE fails the pipeline.)
random_string() {
  "$PYTHON" -c 'import secrets, sys
print("".join(secrets.choice(sys.argv[2]) for _ in range(int(sys.argv[1]))))' "$1" "$2"
}

# Whether PID is a live (not zombie) process whose command line contains PATTERN (a fixed string).
is_ours() {
  local pid=$1 pattern=$2 state
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
  state=$(sed -e 's/^.*) //' -e 's/ .*//' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# SIGKILLs each PID that is_ours(PATTERN), then waits (up to 10 s) until they are gone.
kill_and_wait() {
  local pattern=$1 pid
  shift
  for pid in "$@"; do
    if is_ours "$pid" "$pattern"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for pid in "$@"; do
    for _ in $(seq 200); do
      is_ours "$pid" "$pattern" || continue 2
      sleep 0.05
    done
    log "process $pid survived SIGKILL for 10 s"
    return 1
  done
}

# kill_pidfile NAME DIR PATTERN: kills the process in DIR/run/ickpt-NAME.pid (if it still matches
# PATTERN) and removes the file.
kill_pidfile() {
  local file=$2/run/ickpt-$1.pid
  [[ -f $file ]] || return 0
  kill_and_wait "$3" "$(<"$file")" || return 1
  rm -f "$file"
}

# The PIDs of processes (other than this shell) whose command line contains PATTERN. The list may
# name the grep that made it, gone by the time anyone looks: is_ours filters it out.
pids_matching() {
  local f pid
  grep -lsF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ $pid == "$$" ]] || echo "$pid"
  done || true
}

stop_all() {
  local dir=$1 rc=0 name
  # The watchdog first, so it does not race us; a `start` still running (it would start more);
  # then the daemons, clients before servers.
  kill_pidfile watchdog "$dir" "$dir" || rc=1
  if [[ -f $dir/run/ickpt-start.pid && $(<"$dir/run/ickpt-start.pid") != "$$" ]]; then
    kill_pidfile start "$dir" ceph_cluster.sh || rc=1
  fi
  for name in rgw osd mon; do
    kill_pidfile "$name" "$dir" "$dir/ceph.conf" || rc=1
  done
  # Anything else of this cluster: a radosgw-admin or ceph CLI call cut short, a daemon whose PID
  # was never written down.
  local -a rest
  mapfile -t rest < <(pids_matching "$dir/ceph.conf")
  if ((${#rest[@]})); then kill_and_wait "$dir/ceph.conf" "${rest[@]}" || rc=1; fi
  return $rc
}

# Signed S3 request: s3_curl DIR METHOD PATH [curl args...]; prints the HTTP status code (000 when
# nothing answered). The response body goes to $S3_OUT (default /dev/null); curl gives up after
# $S3_MAX_TIME seconds (default 5).
s3_curl() {
  local dir=$1 method=$2 path=$3
  shift 3
  # shellcheck disable=SC1091
  source "$dir/cluster.env.partial"
  curl -sS -o "${S3_OUT:-/dev/null}" -w '%{http_code}' --max-time "${S3_MAX_TIME:-5}" -X "$method" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ICKPT_RGW_ACCESS_KEY:$ICKPT_RGW_SECRET_KEY" \
    -H "x-amz-content-sha256: $EMPTY_SHA256" "$@" "$ICKPT_RGW_ENDPOINT$path" 2>/dev/null || true
}

log_tail() {
  [[ -s $1 ]] || return 0
  echo "---- last lines of $1 ----" >&2
  tail -n 25 "$1" | cut -c1-400 >&2
  echo "----" >&2
}

# fail MESSAGE [LOG...]: says what failed and shows the logs that explain it; exits 1.
fail() {
  log "$1"
  shift
  local f
  for f in "$@"; do log_tail "$f"; done
  exit 1
}

deadline_passed() { ((SECONDS >= DEADLINE)); }

# Logs a step with the time since `start` began (where a slow start spends its time).
step() {
  local ms=$(((${EPOCHREALTIME/./} - ${T0/./}) / 1000))
  log "$(printf '%3d.%02d s' $((ms / 1000)) $((ms % 1000 / 10))): $*"
}

start_rgw_daemon() {
  local dir=$1
  # radosgw's own messages from before its log file opens (and "failed to bind") land here.
  RGW_STDOUT_OFFSET=$(stat -c %s "$dir/log/rgw.stdout" 2>/dev/null || echo 0)
  radosgw -c "$dir/ceph.conf" -n client.rgw -f </dev/null >>"$dir/log/rgw.stdout" 2>&1 &
  echo $! >"$dir/run/ickpt-rgw.pid"
  disown  # no "Killed" job report from bash when it is killed
}

rgw_bind_failed() {
  tail -c "+$((RGW_STDOUT_OFFSET + 1))" "$1/log/rgw.stdout" 2>/dev/null |
    grep -q 'failed to bind address'
}

rgw_alive() { is_ours "$(<"$1/run/ickpt-rgw.pid")" "$1/ceph.conf"; }

# Waits until radosgw answers an authenticated ListBuckets with 200; fails with its log otherwise.
wait_for_s3() {
  local dir=$1 code=""
  while :; do
    code=$(s3_curl "$dir" GET /)
    [[ $code == 200 ]] && return 0
    rgw_bind_failed "$dir" &&
      fail "radosgw could not bind its port ($ICKPT_RGW_ENDPOINT): another process holds it" \
        "$dir/log/rgw.stdout"
    rgw_alive "$dir" ||
      fail "radosgw exited before serving S3" "$dir/log/client.rgw.log" "$dir/log/rgw.stdout"
    deadline_passed &&
      fail "radosgw did not answer ListBuckets with 200 within ${TIMEOUT_S} s (last: $code)" \
        "$dir/log/client.rgw.log"
    sleep 0.1
  done
}

write_env() {
  local dir=$1
  # shellcheck disable=SC1091
  source "$dir/cluster.env.partial"
  {
    echo "ICKPT_RGW_ENDPOINT=$ICKPT_RGW_ENDPOINT"
    echo "ICKPT_RGW_ACCESS_KEY=$ICKPT_RGW_ACCESS_KEY"
    echo "ICKPT_RGW_SECRET_KEY=$ICKPT_RGW_SECRET_KEY"
    echo "ICKPT_RGW_REGION=$REGION"
    echo "MON_PID=$(<"$dir/run/ickpt-mon.pid")"
    echo "OSD_PID=$(<"$dir/run/ickpt-osd.pid")"
    echo "RGW_PID=$(<"$dir/run/ickpt-rgw.pid")"
  } >"$dir/cluster.env.tmp"
  mv "$dir/cluster.env.tmp" "$dir/cluster.env"
}

write_conf() {
  local dir=$1 fsid=$2 mon_port=$3 osd_port_min=$4 rgw_port=$5 memstore_bytes=$6
  cat >"$dir/ceph.conf" <<EOF
# Written by scripts/ceph_cluster.sh for a throw-away single-node test cluster.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr1 = false
ms bind ipv6 = false
ms bind port min = $osd_port_min
ms bind port max = $((osd_port_min + 15))
run dir = $dir/run
crash dir = $dir/crash
tmp dir = $dir/tmp
keyring = $dir/keyring
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
log to stderr = false
err to stderr = true
client mount timeout = 30
rados mon op timeout = 30
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# radosgw watches its control objects; a SIGKILLed radosgw's watch stays until the OSD times it
# out (30 s by default), and every metadata change (a bucket create, a user create) meanwhile
# waits for the dead watcher's ack: 10 s notify timeouts, retried, ~28 s seen. Clients ping their
# watches once per objecter tick, so both go down together.
osd client watch timeout = 5
objecter tick interval = 1

[mon]
mon data = $dir/mon.a
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
osd data = $dir/osd.0
osd objectstore = memstore
memstore device bytes = $memstore_bytes

[client.rgw]
ms mon client mode = crc
rgw data = $dir/rgw
# tcp_nodelay=1: without it every small reply (a ranged GET of a pack's footer, a listing page)
# waited about 40 ms, Nagle's algorithm meeting the client's delayed ACK: 44-48 ms against
# 2.0-2.5 ms with it, measured by bench/s3_bench (docs/benchmarks.md).
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw gc obj min wait = 0
EOF
}

cmd_start() {
  local dir="" memstore_bytes=$((2 << 30)) owner_pid=""
  while (($#)); do
    case $1 in
      --memstore-bytes) memstore_bytes=${2:?--memstore-bytes needs a value}; shift 2 ;;
      --owner-pid) owner_pid=${2:?--owner-pid needs a value}; shift 2 ;;
      -*) log "unknown option $1"; usage ;;
      *) [[ -z $dir ]] || usage; dir=$1; shift ;;
    esac
  done
  [[ -n $dir ]] || usage
  if [[ ! $memstore_bytes =~ ^[1-9][0-9]*$ ]]; then
    log "--memstore-bytes: not a positive number: $memstore_bytes"
    exit 2
  fi
  if [[ -n $owner_pid ]] && ! kill -0 "$owner_pid" 2>/dev/null; then
    log "--owner-pid $owner_pid: no such process"
    exit 2
  fi
  local cmd
  for cmd in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph curl; do
    if ! command -v "$cmd" >/dev/null; then
      log "$cmd is not installed (scripts/setup.sh installs it)"
      exit 3
    fi
  done
  mkdir -p "$dir"
  dir=$(abs_dir "$dir")
  if [[ -e $dir/ceph.conf ]]; then
    log "$dir already holds a cluster: stop it and use a fresh directory"
    exit 2
  fi
  DEADLINE=$((SECONDS + TIMEOUT_S))
  T0=$EPOCHREALTIME
  mkdir -p "$dir"/{run,log,mon.a,osd.0,rgw,crash,tmp}
  echo $$ >"$dir/run/ickpt-start.pid"
  # Whatever fails from here on (or kills us), leave no daemon behind.
  trap 'rc=$?; trap - EXIT; if ((rc != 0)); then stop_all "'"$dir"'" || true; fi; exit $rc' EXIT
  trap 'exit 143' TERM INT HUP

  if [[ -n $owner_pid ]]; then
    # Redirected: a caller reading our stdout until EOF (a pipe) would otherwise wait for it.
    # setsid: a ^C to the caller's process group must not take it down before it has cleaned up.
    setsid "$SELF" watchdog "$dir" "$owner_pid" </dev/null >>"$dir/log/watchdog.log" 2>&1 &
    echo $! >"$dir/run/ickpt-watchdog.pid"
    disown
  fi

  local fsid mon_port rgw_port osd_port_min osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  rgw_port=$(free_port)
  while [[ $rgw_port == "$mon_port" ]]; do rgw_port=$(free_port); done
  osd_port_min=$(free_port_window 16)
  write_conf "$dir" "$fsid" "$mon_port" "$osd_port_min" "$rgw_port" "$memstore_bytes"
  : >"$dir/keyring"
  local conf=$dir/ceph.conf
  log "$dir: mon on 127.0.0.1:$mon_port, osd ports $osd_port_min-$((osd_port_min + 15))," \
    "radosgw on 127.0.0.1:$rgw_port"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" \
    >"$dir/log/mkfs.log" 2>&1 || fail "monmaptool failed" "$dir/log/mkfs.log"
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >>"$dir/log/mkfs.log" 2>&1 ||
    fail "ceph-mon --mkfs failed" "$dir/log/mkfs.log" "$dir/log/mon.a.log"
  ceph-mon -c "$conf" -i a -f </dev/null >>"$dir/log/mon.stdout" 2>&1 &
  echo $! >"$dir/run/ickpt-mon.pid"
  disown
  # Listening (state 0A in /proc/net/tcp), or dead: fail now rather than when `ceph osd new`
  # gives up at the deadline (a mon that cannot bind its port retries, then exits).
  local listen_pattern
  listen_pattern=$(printf ':%04X 00000000:0000 0A' "$mon_port")
  until grep -q "$listen_pattern" /proc/net/tcp; do
    is_ours "$(<"$dir/run/ickpt-mon.pid")" "$conf" ||
      fail "ceph-mon exited" "$dir/log/mon.a.log" "$dir/log/mon.stdout"
    deadline_passed && fail "ceph-mon did not listen on port $mon_port within ${TIMEOUT_S} s" \
      "$dir/log/mon.a.log" "$dir/log/mon.stdout"
    sleep 0.05
  done

  # `ceph osd new` doubles as the wait for the mon: it keeps trying to connect meanwhile.
  local osd_id remaining=$((DEADLINE - SECONDS))
  osd_id=$(timeout "$remaining" ceph -c "$conf" --connect-timeout "$remaining" osd new \
    "$osd_uuid" 2>>"$dir/log/mkfs.log") ||
    fail "ceph osd new failed (is the mon up?)" "$dir/log/mkfs.log" "$dir/log/mon.a.log" \
      "$dir/log/mon.stdout"
  [[ $osd_id == 0 ]] || fail "ceph osd new gave id '$osd_id', expected 0" "$dir/log/mkfs.log"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/mkfs.log" 2>&1 ||
    fail "ceph-osd --mkfs failed" "$dir/log/mkfs.log" "$dir/log/osd.0.log"
  ceph-osd -c "$conf" -i 0 -f </dev/null >>"$dir/log/osd.stdout" 2>&1 &
  echo $! >"$dir/run/ickpt-osd.pid"
  disown
  step "mon up, osd.0 created"

  # The mon logs the OSD's boot to the cluster log: cheaper to watch than to poll `ceph osd stat`
  # (half a second of Python start-up per call).
  until grep -q 'osd\.0 .* boot' "$dir/log/cluster.log" 2>/dev/null; do
    is_ours "$(<"$dir/run/ickpt-osd.pid")" "$conf" ||
      fail "ceph-osd exited" "$dir/log/osd.0.log" "$dir/log/osd.stdout"
    deadline_passed && fail "osd.0 did not boot within ${TIMEOUT_S} s" "$dir/log/osd.0.log" \
      "$dir/log/mon.a.log"
    sleep 0.05
  done
  step "osd.0 up"

  local access_key secret_key
  access_key=$(random_string 20 ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789)
  secret_key=$(random_string 40 ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789)
  local code
  for _ in 1 2 3; do
    cat >"$dir/cluster.env.partial" <<EOF
ICKPT_RGW_ENDPOINT=http://127.0.0.1:$rgw_port
ICKPT_RGW_ACCESS_KEY=$access_key
ICKPT_RGW_SECRET_KEY=$secret_key
EOF
    start_rgw_daemon "$dir"
    # Any HTTP answer means radosgw has created its pools: only then create the user, or
    # radosgw-admin and radosgw race to create the same pools.
    while :; do
      code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$rgw_port/" \
        2>/dev/null || true)
      [[ $code != 000 && -n $code ]] && break 2
      rgw_bind_failed "$dir" && break
      rgw_alive "$dir" ||
        fail "radosgw exited" "$dir/log/client.rgw.log" "$dir/log/rgw.stdout"
      deadline_passed && fail "radosgw did not serve HTTP within ${TIMEOUT_S} s" \
        "$dir/log/client.rgw.log" "$dir/log/osd.0.log"
      sleep 0.1
    done
    # Someone took the port between our probe and radosgw's bind: another port, another try.
    log "port $rgw_port was taken before radosgw could bind it; trying another"
    kill_pidfile rgw "$dir" "$conf"
    rgw_port=$(free_port)
    sed -i "s|^rgw frontends = .*|rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1|" "$conf"
  done
  [[ $code != 000 && -n $code ]] ||
    fail "radosgw could not bind a port in 3 tries" "$dir/log/rgw.stdout"
  step "radosgw serves HTTP"

  remaining=$((DEADLINE - SECONDS))
  ((remaining > 0)) || fail "out of time before creating the S3 user"
  timeout "$remaining" radosgw-admin -c "$conf" -n client.admin user create --uid ickpt \
    --display-name ickpt --access-key "$access_key" --secret-key "$secret_key" \
    >"$dir/log/user-create.log" 2>&1 ||
    fail "radosgw-admin user create failed" "$dir/log/user-create.log"
  wait_for_s3 "$dir"

  write_env "$dir"
  rm -f "$dir/run/ickpt-start.pid"
  trap - EXIT TERM INT HUP
  cat "$dir/cluster.env"
  step "ready"
}

cmd_watchdog() {
  local dir=$1 owner=$2
  while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
  echo "$(date -Is): owner $owner is gone, killing the cluster"
  # Our own pid file names us: remove it first so that stop_all leaves this process alone.
  rm -f "$dir/run/ickpt-watchdog.pid"
  stop_all "$dir"
}

# The cluster directory given to a subcommand other than start: must exist and hold a cluster.
existing_dir() {
  [[ -f $1/ceph.conf ]] || { log "$1: no cluster here (no ceph.conf)"; exit 2; }
  abs_dir "$1"
}

cmd_stop() {
  local dir
  dir=$(existing_dir "$1")
  stop_all "$dir"
}

cmd_kill_rgw() {
  local dir
  dir=$(existing_dir "$1")
  kill_pidfile rgw "$dir" "$dir/ceph.conf"
}

cmd_start_rgw() {
  local dir
  dir=$(existing_dir "$1")
  [[ -f $dir/cluster.env ]] || { log "$dir: no cluster.env (start the cluster first)"; exit 2; }
  if [[ -f $dir/run/ickpt-rgw.pid ]] && rgw_alive "$dir"; then
    log "$dir: radosgw is already running"
    exit 2
  fi
  DEADLINE=$((SECONDS + TIMEOUT_S))
  start_rgw_daemon "$dir"
  wait_for_s3 "$dir"
  write_env "$dir"
}

cmd_make_bucket() {
  local dir name=$2 code
  dir=$(existing_dir "$1")
  if [[ ! -f $dir/cluster.env.partial ]]; then
    log "$dir: no S3 user yet (start the cluster first)"
    exit 2
  fi
  # S3's error document says why (InvalidBucketName, BucketAlreadyExists, ...).
  # Up to ~5 s when radosgw was killed just before (see the header), so a long time-out.
  code=$(S3_OUT=$dir/tmp/make-bucket.out S3_MAX_TIME=30 s3_curl "$dir" PUT "/$name")
  if [[ $code != 200 ]]; then
    log "PUT /$name answered $code: $(cat "$dir/tmp/make-bucket.out" 2>/dev/null)"
    exit 1
  fi
}

(($# >= 2)) || usage
command=$1
shift
case $command in
  start) cmd_start "$@" ;;
  stop) (($# == 1)) || usage; cmd_stop "$1" ;;
  kill-rgw) (($# == 1)) || usage; cmd_kill_rgw "$1" ;;
  start-rgw) (($# == 1)) || usage; cmd_start_rgw "$1" ;;
  make-bucket) (($# == 2)) || usage; cmd_make_bucket "$1" "$2" ;;
  watchdog) (($# == 2)) || usage; cmd_watchdog "$1" "$2" ;;  # internal: started by `start`
  *) usage ;;
esac
