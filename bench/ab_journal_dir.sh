#!/usr/bin/env bash
# What the journal's place costs a local-only mount, in one invocation: fio sequential
# write (1 MiB blocks, final fsync) on passthrough_ll (the baseline), on mirrorfs with
# its journal on the scratch disk beside BACKING (the default placement), and on
# mirrorfs with its journal in JOURNAL_DIR (e.g. /dev/shm, memory-backed, as NVRAM
# would be). Runs alternate pt, disk, dir, pt, ... and each starts after sync and
# drop_caches. Prints one "<target> <MiB/s>" line per run; compare medians.
#
#   bench/ab_journal_dir.sh BUILD_DIR JOURNAL_DIR     env: ROUNDS (5), SIZE (2G)
#
# Everything lives in temp dirs under ${TMPDIR:-/var/tmp} and JOURNAL_DIR, removed at
# the end; the mounts are unmounted and passthrough_ll ended by its PID on any exit.
# Needs root, fio, python3.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,13p' "$0" >&2; exit 1; }
build=$1 rounds=${ROUNDS:-5} size=${SIZE:-2G}
d=$(mktemp -d "${TMPDIR:-/var/tmp}/ab_journal_dir.XXXXXX")
jd=$(mktemp -d "$2/ab_journal_dir.XXXXXX")
pt_pid=""
cleanup() {
  for m in "$d"/mnt.*; do [ -d "$m" ] && { fusermount3 -u "$m" 2>/dev/null || true; }; done
  [ -n "$pt_pid" ] && kill "$pt_pid" 2>/dev/null
  sleep 0.5
  rm -rf "$d" "$jd"
}
trap cleanup EXIT
mkdir -p "$d"/mnt.pt "$d"/back.pt "$d"/mnt.disk "$d"/back.disk "$d"/mnt.dir "$d"/back.dir
"$build/bench/baselines/passthrough_ll" -f -o "source=$d/back.pt,no_writeback,xattr" "$d/mnt.pt" \
  2>>"$d/pt.log" &
pt_pid=$!
"$build/mirrorfs/mirrorfs" "$d/back.disk" "$d/mnt.disk" -o "source_id=abdisk,journal=$d/journal" \
  2>>"$d/mirrorfs.log"
"$build/mirrorfs/mirrorfs" "$d/back.dir" "$d/mnt.dir" -o "source_id=abdir,journal=$jd/journal" \
  2>>"$d/mirrorfs.log"
for _ in $(seq 50); do mountpoint -q "$d/mnt.pt" && break; sleep 0.1; done
for r in $(seq "$rounds"); do
  for t in pt disk dir; do
    sync
    echo 3 >/proc/sys/vm/drop_caches
    fio --name=seq --directory="$d/mnt.$t" --filename=seq.dat --rw=write --bs=1M --size="$size" \
      --end_fsync=1 --output-format=json >"$d/fio.json" 2>/dev/null
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], round(j['jobs'][0]['write']['bw'] / 1024))" \
      "$d/fio.json" "$t"
    rm -f "$d/mnt.$t/seq.dat"
  done
done
