#!/usr/bin/env bash
# A/B in one mirrored mode, on the same machine in the same invocation: A is mirrorfs
# binary A shipping to a mirrord with FLUSH_DELAY_A, B is binary B shipping to a second
# mirrord with FLUSH_DELAY_B (unset: mirrord's default flush_delay). A's mirrord is the
# binary MIRRORD_A when set (two builds of both daemons), else MIRRORD. fio, 4 jobs, 5 s
# each, runs alternating A, B, A, B... so that drift on a shared machine hits both.
# Prints one line per run: "A <IOPS> IOPS; per record: mirrorfs <us> us CPU, <n> switches;
# mirrord <us> us CPU, <n> switches" (CPU time and voluntary context switches of every
# thread of each daemon during the timed run, divided by the records written); compare
# medians.
#
#   bench/ab_mirrored.sh MIRRORFS_A MIRRORFS_B MIRRORD     (the same binary twice is fine)
#   env: MODE=async|sync|durable (async), ROUNDS (3), RW=randwrite|write (randwrite),
#        BS (4k), FLUSH_DELAY_A, FLUSH_DELAY_B (e.g. 100ms), LAZY_FLUSH_DELAY_A,
#        LAZY_FLUSH_DELAY_B (limits.lazy_flush_delay, for sync and async sources), MIRRORD_A
#
# Two builds of mirrorfs: bench/ab_mirrored.sh old/mirrorfs new/mirrorfs build/mirrord/mirrord
# Two builds of both: MIRRORD_A=old/mirrord bench/ab_mirrored.sh old/mirrorfs new/mirrorfs new/mirrord
# Two mirrord flush delays: FLUSH_DELAY_B=100ms MODE=durable bench/ab_mirrored.sh M M build/mirrord/mirrord
#
# Everything lives in a temp dir under ${TMPDIR:-/var/tmp}, removed at the end; the mounts
# are unmounted and both mirrords stopped by their PIDs on any exit. Needs root, fio, python3.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,22p' "$0" >&2; exit 1; }
a=$1 b=$2 mirrord=$3
mode=${MODE:-async} rounds=${ROUNDS:-3} rw=${RW:-randwrite} bs=${BS:-4k}
d=$(mktemp -d "${TMPDIR:-/var/tmp}/ab_mirrored.XXXXXX")
head -c 32 /dev/urandom | base64 > "$d/secret"
chmod 600 "$d/secret"
pids=()
cleanup() {
  for m in "$d"/mnt.*; do [ -d "$m" ] && { fusermount3 -u "$m" 2>/dev/null || true; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$d"
}
trap cleanup EXIT

start_mirrord() {  # label flush_delay lazy_flush_delay (either may be empty) binary: sets $port
  local limits=""
  [ -n "$2" ] && limits="\"flush_delay\":\"$2\""
  [ -n "$3" ] && limits="$limits${limits:+,}\"lazy_flush_delay\":\"$3\""
  [ -n "$limits" ] && limits=",\"limits\":{$limits}"
  printf '{"listen":["127.0.0.1:0"],"state_dir":"%s/state.%s"%s}' "$d" "$1" "$limits" > "$d/$1.json"
  "$4" serve --config "$d/$1.json" --secret-file "$d/secret" >/dev/null 2>"$d/$1.log" &
  pids+=($!)
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/$1.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "mirrord $1 did not start: $(cat "$d/$1.log")" >&2; exit 1; }
}
start_mirrord A "${FLUSH_DELAY_A:-}" "${LAZY_FLUSH_DELAY_A:-}" "${MIRRORD_A:-$mirrord}"
port_a=$port pid_a=${pids[-1]}
start_mirrord B "${FLUSH_DELAY_B:-}" "${LAZY_FLUSH_DELAY_B:-}" "$mirrord"
port_b=$port pid_b=${pids[-1]}

# The PID of the daemonized mirrorfs serving BACKING $1 on MOUNTPOINT $2 (from /proc, so
# that no procps is needed).
pid_of_mount_daemon() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -F -- " $1 $2 "; then
      echo "${p#/proc/}"
      return
    fi
  done
}

# "<CPU ticks> <voluntary context switches>" of every thread of process $1.
usage_of() {
  local ticks switches
  ticks=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  switches=$(cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }')
  echo "$ticks $switches"
}

run() {  # label binary port round mirrord_pid
  local m="$d/mnt.$1$4" back="$d/back.$1$4" fs_pid fs0 md0 fs1 md1
  mkdir -p "$m" "$back"
  "$2" "$back" "$m" -o "source_id=ab$1$4,journal=$d/j.$1$4,mirror=127.0.0.1:$3,secret_file=$d/secret,mode=$mode" 2>>"$d/mirrorfs.log"
  fs_pid=$(pid_of_mount_daemon "$back" "$m")
  local fio_args=(--name=w --directory="$m" --rw="$rw" --bs="$bs" --size=64M --numjobs=4
    --ioengine=psync --fallocate=none --group_reporting --output-format=json)
  fio "${fio_args[@]}" --create_only=1 >/dev/null 2>&1  # lay the files out first, untimed
  fs0=$(usage_of "$fs_pid") md0=$(usage_of "$5")
  fio "${fio_args[@]}" --time_based --runtime=5 >"$d/fio.json" 2>/dev/null
  fs1=$(usage_of "$fs_pid") md1=$(usage_of "$5")
  python3 - "$d/fio.json" "$1" "$(getconf CLK_TCK)" $fs0 $fs1 $md0 $md1 <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
records = j['jobs'][0]['write']['total_ios'] or 1
tck = int(sys.argv[3])
fs0, fs1, md0, md1 = (list(map(int, sys.argv[i:i + 2])) for i in (4, 6, 8, 10))
def per(a, b):
    return (b[0] - a[0]) * 1e6 / tck / records, (b[1] - a[1]) / records
fs, md = per(fs0, fs1), per(md0, md1)
print(f"{sys.argv[2]} {round(j['jobs'][0]['write']['iops'])} IOPS; per record: "
      f"mirrorfs {fs[0]:.0f} us CPU, {fs[1]:.1f} switches; mirrord {md[0]:.0f} us CPU, {md[1]:.1f} switches")
PY
  fusermount3 -u "$m"
}
for r in $(seq "$rounds"); do
  run A "$a" "$port_a" "$r" "$pid_a"
  run B "$b" "$port_b" "$r" "$pid_b"
done
