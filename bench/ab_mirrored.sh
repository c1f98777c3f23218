#!/usr/bin/env bash
# A/B of two mirrorfs binaries in one mirrored mode, against one mirrord, on the same
# machine in the same invocation: fio, 4 jobs, 5 s each, runs alternating A, B, A, B...
# so that drift on a shared machine hits both. Prints one "A <IOPS>" / "B <IOPS>" line
# per run; compare medians.
#
#   bench/ab_mirrored.sh OLD_MIRRORFS NEW_MIRRORFS MIRRORD
#   env: MODE=async|sync|durable (async), ROUNDS (3), RW=randwrite|write (randwrite), BS (4k)
#
# Everything lives in a temp dir under ${TMPDIR:-/var/tmp}, removed at the end; the mounts
# are unmounted and mirrord is stopped by its PID on any exit. Needs root, fio, python3.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,12p' "$0" >&2; exit 1; }
a=$1 b=$2 mirrord=$3
mode=${MODE:-async} rounds=${ROUNDS:-3} rw=${RW:-randwrite} bs=${BS:-4k}
d=$(mktemp -d "${TMPDIR:-/var/tmp}/ab_mirrored.XXXXXX")
head -c 32 /dev/urandom | base64 > "$d/secret"
chmod 600 "$d/secret"
"$mirrord" serve --listen 127.0.0.1:0 --state-dir "$d/state" --secret-file "$d/secret" \
  2>"$d/mirrord.log" &
mirrord_pid=$!
cleanup() {
  for m in "$d"/mnt.*; do [ -d "$m" ] && { fusermount3 -u "$m" 2>/dev/null || true; }; done
  kill "$mirrord_pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$mirrord_pid" 2>/dev/null || break; sleep 0.1; done
  rm -rf "$d"
}
trap cleanup EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/mirrord.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "mirrord did not start: $(cat "$d/mirrord.log")" >&2; exit 1; }

run() {  # label binary round
  local m="$d/mnt.$1$3" back="$d/back.$1$3"
  mkdir -p "$m" "$back"
  "$2" "$back" "$m" -o "source_id=ab$1$3,journal=$d/j.$1$3,mirror=127.0.0.1:$port,secret_file=$d/secret,mode=$mode" 2>>"$d/mirrorfs.log"
  fio --name=w --directory="$m" --rw="$rw" --bs="$bs" --size=64M --numjobs=4 --time_based \
    --runtime=5 --ioengine=psync --fallocate=none --group_reporting --output-format=json \
    >"$d/fio.json" 2>/dev/null
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], round(j['jobs'][0]['write']['iops']))" "$d/fio.json" "$1"
  fusermount3 -u "$m"
}
for r in $(seq "$rounds"); do
  run A "$a" "$r"
  run B "$b" "$r"
done
