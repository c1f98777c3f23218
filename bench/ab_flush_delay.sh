#!/usr/bin/env bash
# A/B of mirrord's limits.flush_delay: two mirrords in one invocation, one with the default
# 2 ms and one with DELAY, each fed by a fresh mirrorfs mount in MODE; fio, 4 jobs of 4 KiB
# random writes, 5 s each, runs alternating A, B, A, B... so that drift on a shared
# machine hits both. Prints one "A <IOPS>" / "B <IOPS>" line per run; compare medians.
#
#   bench/ab_flush_delay.sh MIRRORFS MIRRORD [MODE (sync)] [DELAY (100ms)] [ROUNDS (3)]
#
# Everything lives in a temp dir under ${TMPDIR:-/var/tmp}, removed at the end; the mounts
# are unmounted and both mirrords stopped by their PIDs on any exit. Needs root, fio,
# python3. (What it measured, 2026-11-25: docs/performance.md, "Where to look next".)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0" >&2; exit 1; }
mirrorfs=$1 mirrord=$2 mode=${3:-sync} delay=${4:-100ms} rounds=${5:-3}
d=$(mktemp -d "${TMPDIR:-/var/tmp}/ab_flush.XXXXXX")
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

start() {  # label flush_delay: starts a mirrord, sets $port
  printf '{"listen":["127.0.0.1:0"],"state_dir":"%s/state.%s","limits":{"flush_delay":"%s"}}' \
    "$d" "$1" "$2" > "$d/$1.json"
  "$mirrord" serve --config "$d/$1.json" --secret-file "$d/secret" >/dev/null 2>"$d/$1.log" &
  pids+=($!)
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/$1.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "mirrord $1 did not start: $(cat "$d/$1.log")" >&2; exit 1; }
}
start A 2ms
port_a=$port
start B "$delay"
port_b=$port

run() {  # label port round
  local m="$d/mnt.$1$3" back="$d/back.$1$3"
  mkdir -p "$m" "$back"
  "$mirrorfs" "$back" "$m" -o "source_id=ab$1$3,journal=$d/j.$1$3,mirror=127.0.0.1:$2,secret_file=$d/secret,mode=$mode" 2>>"$d/mirrorfs.log"
  fio --name=w --directory="$m" --rw=randwrite --bs=4k --size=64M --numjobs=4 --time_based \
    --runtime=5 --ioengine=psync --fallocate=none --group_reporting --output-format=json \
    >"$d/fio.json" 2>/dev/null
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], round(j['jobs'][0]['write']['iops']))" "$d/fio.json" "$1"
  fusermount3 -u "$m"
}
for r in $(seq "$rounds"); do
  run A "$port_a" "$r"
  run B "$port_b" "$r"
done
