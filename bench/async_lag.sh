#!/usr/bin/env bash
# Async lag of mirrorfs (issue 5): how long after a 400 MB workload ends mirrord has it all.
# Starts its own mirrord on 127.0.0.1 (port 0) and one mirrorfs mount with mode=async
# (source_id bench-lag, defaults otherwise: max_lag 64M, journal 256M), then per run writes
# 2000 files of 64 KiB and one file of 256 MiB into it (no fsync) and measures
#   (a) end of the workload -> mirrord's received_seq reaches the mount's last_seq
#       (`mirrord status --json` polled; last_seq read with `mirrorfs status --json` right
#       at the end). The issue's "< 100 ms" is quoted against this.
#   (b) end of the workload -> `mirrorfs checkpoint MNT` returns, started when (a) is
#       done: the image then holds everything (mirrord applies at consistency points).
# and checks that the image equals BACKING. Figures are medians over the runs
# (bench/async_lag.py does the timing). Called by bench/fs_bench.sh when mirrorfs-async is a
# target; runs on its own as well.
#
#   bench/async_lag.sh [--build DIR] [--runs N] [--scratch DIR] [--json FILE]
#                      [--mirrorfs-opts OPTS] [--keep-logs DIR]
#
# Everything lives in a temp dir under --scratch (default ${TMPDIR:-/var/tmp}), removed at
# the end; the mount and mirrord are ended by PID on any exit (trap). Needs root, python3,
# fusermount3.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
helper="$script_dir/async_lag.py"
# shellcheck source=bench/fs_bench_lib.sh
source "$script_dir/fs_bench_lib.sh"

readonly kRunTimeout=600 # seconds for one run (workload, lag, checkpoint, verify)

usage() {
  cat <<EOF
usage: bench/async_lag.sh [--build DIR] [--runs N] [--scratch DIR] [--json FILE]
                          [--mirrorfs-opts OPTS] [--keep-logs DIR]
  --build DIR    build tree with mirrorfs/mirrorfs and mirrord/mirrord (default: $repo_dir/build)
  --runs N       runs; figures are medians (default 3)
  --scratch DIR  parent of the temp dir (default: \${TMPDIR:-/var/tmp})
  --json FILE    write the runs and medians to FILE
  --mirrorfs-opts OPTS   more mount options for the async mount (e.g. max_lag=16M)
  --keep-logs DIR        copy mirrord's and mirrorfs's logs to DIR at the end
EOF
}
die_usage() {
  echo "async_lag: $*" >&2
  usage >&2
  exit 1
}

build_dir="$repo_dir/build"
runs=3
parent=${TMPDIR:-/var/tmp}
json_out=""
mirrorfs_opts=""
keep_logs=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) [[ $# -ge 2 ]] || die_usage "--build needs a directory"; build_dir=$2; shift 2 ;;
    --runs) [[ $# -ge 2 ]] || die_usage "--runs needs a number"; runs=$2; shift 2 ;;
    --scratch) [[ $# -ge 2 ]] || die_usage "--scratch needs a directory"; parent=$2; shift 2 ;;
    --json) [[ $# -ge 2 ]] || die_usage "--json needs a file"; json_out=$2; shift 2 ;;
    --mirrorfs-opts)
      [[ $# -ge 2 ]] || die_usage "--mirrorfs-opts needs options"; mirrorfs_opts=$2; shift 2 ;;
    --keep-logs) [[ $# -ge 2 ]] || die_usage "--keep-logs needs a directory"; keep_logs=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die_usage "--runs must be a positive integer, got '$runs'"
[[ $build_dir != /* ]] && build_dir="$PWD/$build_dir"
[[ -n $json_out && $json_out != /* ]] && json_out="$PWD/$json_out"
[[ $(id -u) -eq 0 ]] || { echo "async_lag: run as root (FUSE mounts)" >&2; exit 1; }

mirrorfs_bin="$build_dir/mirrorfs/mirrorfs"
mirrord_bin="$build_dir/mirrord/mirrord"
[[ -x $mirrorfs_bin ]] || { echo "async_lag: $mirrorfs_bin not built" >&2; exit 1; }

scratch=$(mktemp -d "$parent/mirrorfs-asynclag.XXXXXX")
mnt="$scratch/mnt"
mirrord_pid=""
fs_pid=""
helper_pid=""
cleaned=0
# shellcheck disable=SC2317  # called through the trap
cleanup() {
  [[ $cleaned -eq 1 ]] && return
  cleaned=1
  set +e
  stop_pid "$helper_pid" # timeout(1) passes the TERM on to the helper
  unmount_and_stop "$mnt" "$fs_pid" # while mirrord runs: the unmount may take a last CP
  stop_pid "$mirrord_pid"
  if [[ -n $keep_logs ]] && mkdir -p "$keep_logs"; then
    cp -- "$scratch"/*.log "$keep_logs"/ 2>/dev/null
  fi
  if awk -v s="$scratch/" 'index($2, s) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "async_lag: mounts remain under $scratch; left it in place" >&2
  elif [[ $scratch == */mirrorfs-asynclag.* && -d $scratch ]]; then
    rm -rf -- "$scratch"
  fi
}
trap cleanup EXIT
trap 'echo "async_lag: interrupted" >&2; exit 130' INT
trap 'echo "async_lag: terminated" >&2; exit 143' TERM

make_secret "$scratch/secret"
if ! start_mirrord "$mirrord_bin" "$scratch/mirrord" "$scratch/secret" "$scratch/mirrord.log"; then
  echo "async_lag: $mirrord_error" >&2
  exit 1
fi
mkdir -p "$scratch/backing" "$mnt"
opts="source_id=bench-lag,journal=$scratch/journal,mirror=127.0.0.1:$mirrord_port"
opts+=",secret_file=$scratch/secret,mode=async${mirrorfs_opts:+,$mirrorfs_opts}"
spawn_daemon "$(ulimit -n)" "$scratch/mirrorfs.log" \
  "$mirrorfs_bin" "$scratch/backing" "$mnt" -f -o "$opts"
fs_pid=$spawned_pid
if ! wait_mount "$mnt" "$fs_pid" "$scratch/mirrorfs.log"; then
  echo "async_lag: mirrorfs mode=async: $wait_error" >&2
  exit 1
fi
echo "async_lag: mirrord 127.0.0.1:$mirrord_port (pid $mirrord_pid), mirrorfs mode=async at $mnt (pid $fs_pid)"

runs_jsonl="$scratch/runs.jsonl"
: >"$runs_jsonl"
for ((run = 1; run <= runs; run++)); do
  if ! kill -0 "$fs_pid" 2>/dev/null || ! is_mounted "$mnt"; then
    python3 "$helper" error "$run" "mirrorfs died: $(last_lines "$scratch/mirrorfs.log")" >>"$runs_jsonl"
    break
  fi
  # The helper prints one line for humans on stderr and the run's JSON on stdout. It runs in
  # the background so that a signal reaches our trap at once (which ends it by PID).
  timeout "$kRunTimeout" python3 "$helper" run --mnt "$mnt" --mirrorfs "$mirrorfs_bin" \
    --mirrord "$mirrord_bin" --state-dir "$scratch/mirrord" --source bench-lag \
    --backing "$scratch/backing" --run "$run" >"$scratch/run.json" &
  helper_pid=$!
  wait "$helper_pid" || true
  helper_pid=""
  line=$(cat "$scratch/run.json")
  [[ -n $line ]] || line=$(python3 "$helper" error "$run" "no result (timed out after $kRunTimeout s?)")
  echo "$line" >>"$runs_jsonl"
done

python3 "$helper" summary "$runs_jsonl" ${json_out:+--json "$json_out"}
