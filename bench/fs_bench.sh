#!/usr/bin/env bash
# Filesystem benchmark of mirrorfs (issues 3 and 5): the same workloads, in one invocation,
# against these targets (--targets picks some; passthrough_ll, the baseline, is always run):
#   plain             a directory on the scratch filesystem,
#   passthrough_ll    libfuse's example (<build>/bench/baselines/passthrough_ll), the baseline,
#   mirrorfs          mirrorfs local-only (no mirror=),
#   mirrorfs-async    mirrorfs -o mirror=127.0.0.1:PORT,secret_file=F,mode=async,
#   mirrorfs-sync     the same, mode=sync,
#   mirrorfs-durable  the same, mode=durable; the three ship to one mirrord that this script
#                     starts on 127.0.0.1 (port 0, state dir in the scratch dir), each with
#                     its own source_id (bench-async, bench-sync, bench-durable),
#   glusterfs         with --peers only: a GlusterFS replica-2 volume of two bricks on this
#                     host over loopback, through the glusterfs FUSE client
#                     (bench/fs_bench_gluster.sh; installs glusterfs-server if missing),
# and prints each figure's median and its ratio to passthrough_ll, with the targets of
# issue 3 (mirrorfs local-only >= 0.9x on sequential write and read, >= 0.8x on random
# writes and creates) and issue 5 (sync >= 0.7x sequential write, >= 0.5x 4 KiB random
# write and creates; async >= 0.9x on those three; sync >= 10x GlusterFS on 4 KiB random
# write). A target that cannot be set up is reported "not available (reason)".
# With mirrorfs-async among the targets, bench/async_lag.sh then measures the async lag
# after a 400 MB workload (--no-lag skips it).
#
#   bench/fs_bench.sh [--build DIR] [--runs N] [--size SIZE] [--quick] [--json FILE]
#                     [--mirrorfs-opts OPTS] [--targets LIST] [--peers] [--no-lag]
#                     [--keep-logs DIR]
#
# Workloads (fio with ioengine=psync, fallocate=none, JSON output; one file per job):
#   seq-write        1 MiB blocks, SIZE bytes, final fsync (fio counts the fsync in the time)
#   seq-read         1 MiB blocks of that file, after sync + drop_caches (or O_DIRECT if
#                    caches cannot be dropped; the output says which)
#   randwrite-4j     4 KiB random writes, 4 jobs, each on its own SIZE/4 file, time-based
#   randwrite-fsync  4 KiB random writes with fsync after each, 1 job, time-based
#   create, unlink   bench_createloop: create+write 4 KiB+close of N files in one directory,
#                    then unlink them (N stays below the FUSE daemons' fd limit: the
#                    passthrough daemons hold one fd per inode the kernel remembers)
# Defaults: 3 runs, SIZE 1G, 5 s random-write phases, N=10000, sync before each workload:
# about 4 minutes per 3 targets on a 2-core VM. --quick: 64M, 500 ms, N=1000, no sync
# between workloads.
# Runs are interleaved (run 1 of every target, then run 2, ...) and the target order rotates
# from run to run, so that drift on a shared machine does not favour one target.
#
# All FUSE mounts run with their defaults: no writeback cache. All scratch space (plain dir,
# backing dirs, mountpoints, mirrorfs journals, mirrord's state, the gluster bricks) lives in
# one temp dir under ${TMPDIR:-/var/tmp}, so every target is on the same filesystem; it is
# removed at the end. Every mount is unmounted and its daemon killed by PID on any exit
# (trap), Ctrl-C included, then mirrord, then the gluster volume (stopped, deleted) and
# glusterd if this script started it.
# Needs root (drop_caches, FUSE mounts), fio, python3 and fusermount3.
set -euo pipefail

readonly kFuseNofile=262144  # fd limit asked for the FUSE daemons (see fuse_nofile)
readonly kAllTargets=(plain passthrough_ll mirrorfs mirrorfs-async mirrorfs-sync mirrorfs-durable glusterfs)
readonly kMirrorModes=(async sync durable)

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
report="$script_dir/fs_bench_report.py"
# shellcheck source=bench/fs_bench_lib.sh
source "$script_dir/fs_bench_lib.sh"
# shellcheck source=bench/fs_bench_gluster.sh
source "$script_dir/fs_bench_gluster.sh"

usage() {
  cat <<EOF
usage: bench/fs_bench.sh [--build DIR] [--runs N] [--size SIZE] [--quick] [--json FILE]
                         [--mirrorfs-opts OPTS] [--targets LIST] [--peers] [--no-lag]
                         [--journal-dir DIR] [--keep-logs DIR]
  --build DIR   build tree with bench/baselines/passthrough_ll, bench/bench_createloop,
                mirrorfs/mirrorfs and mirrord/mirrord (default: $repo_dir/build)
  --runs N      runs per workload and target; figures are medians (default 3); also the
                runs of the async lag phase
  --size SIZE   sequential file size, fio syntax: 512M, 1G (default 1G; random-write files
                are SIZE/4 each)
  --quick       64M, 500 ms random-write phases, 1000 files: about a minute per 3 targets
                (the lag phase keeps its 400 MB workload)
  --json FILE   also write every run, median, ratio, target check and the lag to FILE
  --mirrorfs-opts OPTS
                more mount options for every mirrorfs target, e.g. journal_size=4G,cp_interval=0
                to see what consistency points cost (the figures quoted against the
                targets use the defaults)
  --journal-dir DIR
                put the mirrorfs targets' journals in DIR (a temp dir in it, removed at
                the end), e.g. /dev/shm: a memory-backed journal, as NVRAM would be,
                instead of one on the scratch disk (docs/performance.md, "Where the
                journal lives")
  --targets LIST
                comma-separated, from: ${kAllTargets[*]}
                (default: all but glusterfs; passthrough_ll is always added: it is the baseline)
  --peers       also GlusterFS replica-2 over loopback (target glusterfs); installs
                glusterfs-server with apt-get if it is missing
  --no-lag      skip the async lag phase (bench/async_lag.sh)
  --keep-logs DIR
                copy the daemons' logs (FUSE daemons, mirrord, glusterd) to DIR at the end
EOF
}

die_usage() {
  echo "fs_bench: $*" >&2
  usage >&2
  exit 1
}

# ---- options ------------------------------------------------------------------------------
build_dir="$repo_dir/build"
runs=""
size=""
quick=0
json_out=""
mirrorfs_opts=""
targets_arg=""
peers=0
lag=1
keep_logs=""
journal_parent=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) [[ $# -ge 2 ]] || die_usage "--build needs a directory"; build_dir=$2; shift 2 ;;
    --runs) [[ $# -ge 2 ]] || die_usage "--runs needs a number"; runs=$2; shift 2 ;;
    --size) [[ $# -ge 2 ]] || die_usage "--size needs a size"; size=$2; shift 2 ;;
    --json) [[ $# -ge 2 ]] || die_usage "--json needs a file"; json_out=$2; shift 2 ;;
    --mirrorfs-opts)
      [[ $# -ge 2 ]] || die_usage "--mirrorfs-opts needs options"; mirrorfs_opts=$2; shift 2 ;;
    --targets) [[ $# -ge 2 ]] || die_usage "--targets needs a list"; targets_arg=$2; shift 2 ;;
    --peers) peers=1; shift ;;
    --no-lag) lag=0; shift ;;
    --journal-dir)
      [[ $# -ge 2 ]] || die_usage "--journal-dir needs a directory"; journal_parent=$2; shift 2 ;;
    --keep-logs) [[ $# -ge 2 ]] || die_usage "--keep-logs needs a directory"; keep_logs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done

# The selected targets, in kAllTargets order.
declare -A wanted=()
if [[ -z $targets_arg ]]; then
  for t in "${kAllTargets[@]}"; do [[ $t == glusterfs ]] || wanted[$t]=1; done
else
  IFS=',' read -r -a requested <<<"$targets_arg"
  for t in "${requested[@]}"; do
    [[ -z $t ]] && continue
    [[ " ${kAllTargets[*]} " == *" $t "* ]] || die_usage "--targets: unknown target '$t'"
    wanted[$t]=1
  done
fi
wanted[passthrough_ll]=1
[[ $peers -eq 1 ]] && wanted[glusterfs]=1
targets=()
for t in "${kAllTargets[@]}"; do [[ -n ${wanted[$t]:-} ]] && targets+=("$t"); done

if [[ $quick -eq 1 ]]; then
  : "${runs:=3}" "${size:=64M}"
  runtime=500ms  # each time-based random-write phase (fio time syntax)
  files=1000     # files per create/unlink run
  settle_sync=0  # no sync between workloads (drop_caches still syncs)
else
  : "${runs:=3}" "${size:=1G}"
  runtime=5s
  files=10000
  settle_sync=1
fi
[[ $runs =~ ^[1-9][0-9]*$ ]] || die_usage "--runs must be a positive integer, got '$runs'"

# SIZE in bytes (fio's suffixes are powers of two by default: K, M, G, T; optional "iB").
size_bytes() {
  local s=${1^^} mult=1
  s=${s%IB}
  s=${s%B}
  case "$s" in
    *K) mult=$((1 << 10)); s=${s%K} ;;
    *M) mult=$((1 << 20)); s=${s%M} ;;
    *G) mult=$((1 << 30)); s=${s%G} ;;
    *T) mult=$((1 << 40)); s=${s%T} ;;
  esac
  [[ $s =~ ^[0-9]+$ ]] || return 1
  echo $((s * mult))
}
seq_bytes=$(size_bytes "$size") || die_usage "--size: cannot parse '$size'"
((seq_bytes >= 4 << 20)) || die_usage "--size must be at least 4M"
rand_bytes=$((seq_bytes / 4 / 4096 * 4096))

[[ -n $json_out && $json_out != /* ]] && json_out="$PWD/$json_out"
[[ $build_dir != /* ]] && build_dir="$PWD/$build_dir"

for tool in fio python3 fusermount3; do
  command -v "$tool" >/dev/null || { echo "fs_bench: $tool is not installed" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "fs_bench: run as root (FUSE mounts, drop_caches)" >&2; exit 1; }

passthrough_bin="$build_dir/bench/baselines/passthrough_ll"
mirrorfs_bin="$build_dir/mirrorfs/mirrorfs"
mirrord_bin="$build_dir/mirrord/mirrord"
createloop_bin="$build_dir/bench/bench_createloop"

# ---- scratch space and cleanup ------------------------------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/mirrorfs-fsbench.XXXXXX")
journal_dir=$scratch
if [[ -n $journal_parent ]]; then
  journal_dir=$(mktemp -d "$journal_parent/mirrorfs-fsbench-journals.XXXXXX") ||
    { echo "fs_bench: cannot create a directory in $journal_parent" >&2; rm -rf -- "$scratch"; exit 1; }
fi
declare -A daemon_pid=() mountpoint_of=() state=() reason=() workdir=()
mirrord_pid=""
lag_pid=""
cleaned=0

# Unmounts target $1's mount and ends its daemon by PID (fs_bench_lib.sh).
stop_fuse() {
  unmount_and_stop "${mountpoint_of[$1]:-}" "${daemon_pid[$1]:-}"
  unset 'daemon_pid[$1]'
  return 0
}

# Ends every mount and daemon of the targets. Order matters: the mounts first, the mirrored
# ones while mirrord still runs (an unmount may end with a last consistency point); then
# mirrord; then the gluster volume and glusterd. Safe to call again.
teardown_targets() {
  local name
  for name in "${!mountpoint_of[@]}"; do stop_fuse "$name"; done
  mountpoint_of=()
  stop_pid "$mirrord_pid"
  mirrord_pid=""
  gluster_teardown
}

# The lag phase (its own mounts and mirrord, ended by its own trap on TERM) first.
# shellcheck disable=SC2317  # called through the trap
cleanup() {
  [[ $cleaned -eq 1 ]] && return
  cleaned=1
  set +e
  stop_pid "$lag_pid" 600 # it unmounts and stops its mirrord first: up to 60 s
  teardown_targets
  if [[ -n $keep_logs ]] && mkdir -p "$keep_logs"; then
    cp -- "$scratch"/*.log "$scratch"/gluster/*.log "$keep_logs"/ 2>/dev/null
    echo "fs_bench: logs copied to $keep_logs" >&2
  fi
  # Never rm -rf through a mount that is still there.
  if awk -v s="$scratch/" 'index($2, s) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "fs_bench: mounts remain under $scratch; left it in place" >&2
  elif [[ $scratch == */mirrorfs-fsbench.* && -d $scratch ]]; then
    rm -rf -- "$scratch"
  fi
  if [[ $journal_dir == */mirrorfs-fsbench-journals.* && -d $journal_dir ]]; then
    rm -rf -- "$journal_dir"
  fi
}
trap cleanup EXIT
trap 'echo "fs_bench: interrupted" >&2; exit 130' INT
trap 'echo "fs_bench: terminated" >&2; exit 143' TERM

# ---- environment --------------------------------------------------------------------------
# Seq read must not come from a warm page cache: drop caches if we can, else O_DIRECT for all.
if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
  read_mode="drop_caches"
  read_fio_opts=()
  read_mode_text="seq read after sync + drop_caches (buffered)"
else
  read_mode="direct"
  read_fio_opts=(--direct=1)
  read_mode_text="seq read with O_DIRECT on every target (drop_caches not writable)"
fi
# The passthrough daemons hold an O_PATH fd per inode the kernel remembers, so N created files
# need N fds: every FUSE daemon gets the same raised RLIMIT_NOFILE (as high as we may raise it),
# and the file count stays 1000 below it.
fuse_nofile=$( (ulimit -n "$kFuseNofile" 2>/dev/null && ulimit -n) || ulimit -Hn)
if [[ $fuse_nofile =~ ^[0-9]+$ ]] && ((files > fuse_nofile - 1000)); then
  files=$((fuse_nofile - 1000))
  ((files >= 100)) || { echo "fs_bench: RLIMIT_NOFILE $fuse_nofile is too low" >&2; exit 1; }
fi
setup_text="size=$size, random-write phases $runtime, $files files per create/unlink run;"
if [[ $settle_sync -eq 1 ]]; then setup_text+=" sync before each workload;"; else setup_text+=" no sync between workloads;"; fi
setup_text+=" $read_mode_text; FUSE mounts without writeback cache, daemons with"
setup_text+=" RLIMIT_NOFILE=$fuse_nofile."
setup_text+=" Mirrored mirrorfs targets ship to one mirrord on 127.0.0.1 (quick start, defaults)."
if [[ -n $mirrorfs_opts ]]; then
  setup_text+=" mirrorfs has extra options $mirrorfs_opts: not the defaults the targets are judged with."
fi
if [[ -n $journal_parent ]]; then
  setup_text+=" mirrorfs journals in $journal_dir ($(df -PT "$journal_dir" | awk 'NR == 2 { print $2 }')), not on the scratch disk."
fi

scratch_fs=$(df -PT "$scratch" | awk 'NR == 2 { print $2 " on " $1 }')
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "== mirrorfs filesystem benchmark ($(date -u '+%Y-%m-%d %H:%M:%S UTC')) =="
echo "kernel:    $(uname -srm)"
echo "cpus:      $(nproc) (${cpu_model:-unknown model}), memory $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "scratch:   $scratch ($scratch_fs)"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; this machine is shared)"
echo "fio:       $(fio --version), libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo '?')"
echo "setup:     runs=$runs; $setup_text"
echo "targets:   ${targets[*]}"

meta="$scratch/meta.tsv"
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'cpus\t%s\n' "$(nproc)"
  printf 'cpu_model\t%s\n' "$cpu_model"
  printf 'scratch_fs\t%s\n' "$scratch_fs"
  printf 'fio\t%s\n' "$(fio --version)"
  printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'fuse_nofile\t%s\n' "$fuse_nofile"
  printf 'runs\t%s\n' "$runs"
  printf 'size\t%s\n' "$size"
  printf 'random_write_runtime\t%s\n' "$runtime"
  printf 'files\t%s\n' "$files"
  printf 'read_mode\t%s\n' "$read_mode"
  printf 'writeback_cache\toff\n'
  printf 'setup\t%s\n' "$setup_text"
  printf 'targets\t%s\n' "${targets[*]}"
} >"$meta"

# ---- targets ------------------------------------------------------------------------------
targets_tsv="$scratch/targets.tsv"
results="$scratch/results.tsv"
: >"$results"

set_target() { # name state reason
  state[$1]=$2
  reason[$1]=$3
}

selected() { [[ -n ${wanted[$1]:-} ]]; }

# Starts a FUSE daemon in the foreground (-f) in the background, remembers its PID and
# waits up to 10 s for the mount. Usage: start_fuse NAME MOUNTPOINT COMMAND...
start_fuse() {
  local name=$1 mnt=$2 log="$scratch/$1.log"
  shift 2
  mkdir -p "$mnt"
  spawn_daemon "$fuse_nofile" "$log" "$@"
  daemon_pid[$name]=$spawned_pid
  mountpoint_of[$name]=$mnt # before it is known to be mounted: cleanup must see it anyway
  if wait_mount "$mnt" "$spawned_pid" "$log"; then
    set_target "$name" ok ""
    workdir[$name]=$mnt
    return 0
  fi
  set_target "$name" failed "$wait_error"
  kill -0 "${daemon_pid[$name]}" 2>/dev/null || unset 'daemon_pid[$name]'
  stop_fuse "$name"
  return 1
}

if selected plain; then
  mkdir -p "$scratch/plain"
  workdir[plain]="$scratch/plain"
  set_target plain ok ""
fi

mkdir -p "$scratch/passthrough_ll.backing"
if [[ ! -x $passthrough_bin ]]; then
  set_target passthrough_ll failed "$passthrough_bin not built"
else
  start_fuse passthrough_ll "$scratch/passthrough_ll.mnt" \
    "$passthrough_bin" -f -o "source=$scratch/passthrough_ll.backing,no_writeback,xattr" \
    "$scratch/passthrough_ll.mnt" || true
fi

# mirrorfs target NAME with mount options OPTS (after source_id and journal).
start_mirrorfs() {
  local name=$1 opts=$2
  mkdir -p "$scratch/$name.backing"
  if [[ ! -x $mirrorfs_bin ]]; then
    set_target "$name" failed "$mirrorfs_bin not built"
    return 0
  fi
  start_fuse "$name" "$scratch/$name.mnt" \
    "$mirrorfs_bin" "$scratch/$name.backing" "$scratch/$name.mnt" -f \
    -o "$opts${mirrorfs_opts:+,$mirrorfs_opts}" || true
}

selected mirrorfs &&
  start_mirrorfs mirrorfs "source_id=fsbench,journal=$journal_dir/mirrorfs.journal"

# The mirrored targets: one mirrord, one source id per mode.
mirrored=()
for mode in "${kMirrorModes[@]}"; do selected "mirrorfs-$mode" && mirrored+=("mirrorfs-$mode"); done
if [[ ${#mirrored[@]} -gt 0 ]]; then
  make_secret "$scratch/secret"
  if start_mirrord "$mirrord_bin" "$scratch/mirrord" "$scratch/secret" "$scratch/mirrord.log"; then
    echo "mirrord:   127.0.0.1:$mirrord_port (pid $mirrord_pid), state dir $scratch/mirrord"
    printf 'mirrord\t127.0.0.1:%s, state dir in the scratch dir\n' "$mirrord_port" >>"$meta"
    for name in "${mirrored[@]}"; do
      mode=${name#mirrorfs-}
      start_mirrorfs "$name" "source_id=bench-$mode,journal=$journal_dir/$name.journal,mirror=127.0.0.1:$mirrord_port,secret_file=$scratch/secret,mode=$mode"
    done
  else
    stop_pid "$mirrord_pid"
    mirrord_pid=""
    for name in "${mirrored[@]}"; do set_target "$name" failed "mirrord: $mirrord_error"; done
  fi
fi

if selected glusterfs; then
  mkdir -p "$scratch/gluster"
  if gluster_setup "$scratch/gluster"; then
    echo "glusterfs: volume $gluster_volume, replica 2, bricks $gluster_host:$scratch/gluster/brick{1,2}${gluster_glusterd_pid:+ (glusterd pid $gluster_glusterd_pid, started here)}"
    printf 'glusterfs\t%s, replica 2 over loopback (brick host %s), default volume options\n' \
      "$(glusterfs --version 2>/dev/null | head -n 1)" "$gluster_host" >>"$meta"
    mapfile -t gluster_cmd < <(gluster_mount_cmd "$scratch/glusterfs.mnt" "$scratch/glusterfs.client.log")
    start_fuse glusterfs "$scratch/glusterfs.mnt" "${gluster_cmd[@]}" || true
  else
    set_target glusterfs failed "$gluster_error"
  fi
fi

for name in "${targets[@]}"; do
  if [[ ${state[$name]} == ok ]]; then
    echo "target:    $name at ${workdir[$name]}${daemon_pid[$name]:+ (pid ${daemon_pid[$name]})}"
  else
    echo "target:    $name: not available (${reason[$name]})"
  fi
done
[[ -x $createloop_bin ]] ||
  echo "note:      $createloop_bin not built (ninja -C $build_dir bench_createloop): no create/unlink figures"

# ---- workloads ----------------------------------------------------------------------------
# Records one figure (or NA and why) and prints it. Usage: record TARGET WORKLOAD RUN VALUE [REASON]
record() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$results"
  local unit
  case "$2" in
    seq-*) unit="MiB/s" ;;
    randwrite-*) unit="IOPS" ;;
    *) unit="files/s" ;;
  esac
  if [[ $4 == NA ]]; then
    printf '  %-17s %-16s failed: %s\n' "$1" "$2" "${5:-}"
  else
    printf '  %-17s %-16s %12.1f %s\n' "$1" "$2" "$4" "$unit"
  fi
}

# Runs fio on target $1 for workload $2 (run $3), taking direction/metric $4/$5 from its
# JSON; the rest are fio options.
run_fio() {
  local target=$1 workload=$2 run=$3 direction=$4 metric=$5 out value rc=0
  shift 5
  out="$scratch/fio.$target.$workload.$run.json"
  fio --output-format=json --output="$out" --directory="${workdir[$target]}" \
    --ioengine=psync --fallocate=none "$@" >"$out.stderr" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    record "$target" "$workload" "$run" NA "fio exit $rc: $(tail -n 1 "$out.stderr")"
  elif value=$(python3 "$report" figure fio "$out" "$direction" "$metric" 2>&1); then
    record "$target" "$workload" "$run" "$value"
  else
    record "$target" "$workload" "$run" NA "$value"
  fi
}

# Before each workload: flush the previous one's dirty data so that the flush is not charged
# to the next workload (skipped with --quick, where sync under load dominates the run time).
# The mirrored mounts share one mirrord, which applies each source's log to its image at
# consistency points: `mirrorfs checkpoint` on each of them first, so that applying the
# previous workload's records is not charged to the next workload either.
settle() {
  [[ $settle_sync -eq 0 ]] && return 0
  local name
  for name in "${mirrored[@]}"; do
    [[ ${state[$name]} == ok ]] || continue
    timeout 300 "$mirrorfs_bin" checkpoint "${workdir[$name]}" >/dev/null 2>&1 ||
      echo "fs_bench: mirrorfs checkpoint ${workdir[$name]} failed or timed out" >&2
  done
  sync
}

drop_caches() {
  sync
  [[ $read_mode == drop_caches ]] && echo 3 >/proc/sys/vm/drop_caches
  return 0
}

# True while target $1 can still be measured (its daemon has not died under us).
target_alive() {
  [[ ${state[$1]} == ok ]] || return 1
  [[ -z ${daemon_pid[$1]:-} ]] && return 0
  if ! kill -0 "${daemon_pid[$1]}" 2>/dev/null || ! is_mounted "${workdir[$1]}"; then
    set_target "$1" failed "daemon died during the benchmark: $(tail -n 1 "$scratch/$1.log" 2>/dev/null)"
    return 1
  fi
}

run_workloads() { # target run
  local t=$1 r=$2 dir=${workdir[$1]} out value phase
  target_alive "$t" || return 0
  settle
  run_fio "$t" seq-write "$r" write bw --name=seqwrite --filename=seq.dat --rw=write \
    --bs=1M --size="$seq_bytes" --end_fsync=1
  drop_caches
  run_fio "$t" seq-read "$r" read bw --name=seqread --filename=seq.dat --rw=read \
    --bs=1M --size="$seq_bytes" "${read_fio_opts[@]}"
  rm -f -- "$dir/seq.dat" 2>/dev/null || true

  target_alive "$t" || return 0
  settle
  # shellcheck disable=SC2016  # $jobnum is fio's, not ours
  run_fio "$t" randwrite-4j "$r" write iops --name=randwrite4j --filename_format='rw4j.$jobnum' \
    --rw=randwrite --bs=4k --size="$rand_bytes" --numjobs=4 --group_reporting \
    --time_based --runtime="$runtime"
  rm -f -- "$dir"/rw4j.* 2>/dev/null || true

  target_alive "$t" || return 0
  settle
  run_fio "$t" randwrite-fsync "$r" write iops --name=randwritefsync --filename=rwsync.dat \
    --rw=randwrite --bs=4k --size="$rand_bytes" --fsync=1 --time_based --runtime="$runtime"
  rm -f -- "$dir/rwsync.dat" 2>/dev/null || true

  target_alive "$t" || return 0
  [[ -x $createloop_bin ]] || return 0
  settle
  out="$scratch/createloop.$t.$r.json"
  if mkdir -p "$dir/createloop" 2>"$out" && "$createloop_bin" "$dir/createloop" "$files" >"$out" 2>&1; then
    for phase in create unlink; do
      if value=$(python3 "$report" figure createloop "$out" "${phase}_per_s" 2>&1); then
        record "$t" "$phase" "$r" "$value"
      else
        record "$t" "$phase" "$r" NA "$value"
      fi
    done
  else
    record "$t" create "$r" NA "$(tail -n 1 "$out")"
    record "$t" unlink "$r" NA "$(tail -n 1 "$out")"
  fi
  rm -rf -- "$dir/createloop" 2>/dev/null || true
}

start_time=$SECONDS
for ((run = 1; run <= runs; run++)); do
  echo
  echo "-- run $run/$runs --"
  for ((k = 0; k < ${#targets[@]}; k++)); do
    t=${targets[(k + run - 1) % ${#targets[@]}]}
    [[ ${state[$t]} == ok ]] && run_workloads "$t" "$run"
  done
done
elapsed=$((SECONDS - start_time))
for name in "${targets[@]}"; do
  printf '%s\t%s\t%s\n' "$name" "${state[$name]}" "${reason[$name]}"
done >"$targets_tsv"

# ---- async lag ----------------------------------------------------------------------------
# Its own mirrord and mount (bench/async_lag.sh), after this script's daemons are gone.
lag_json="$scratch/lag.json"
if [[ $lag -eq 1 ]] && selected mirrorfs-async; then
  teardown_targets
  echo
  if [[ ${state[mirrorfs-async]} != ok ]]; then
    python3 "$report" lag-unavailable "mirrorfs-async is not available: ${reason[mirrorfs-async]}" >"$lag_json"
    echo "-- async lag: not available (mirrorfs-async is not available) --"
  else
    echo "-- async lag (bench/async_lag.sh --runs $runs) --"
    lag_args=(--build "$build_dir" --runs "$runs" --scratch "$scratch" --json "$lag_json")
    [[ -n $mirrorfs_opts ]] && lag_args+=(--mirrorfs-opts "$mirrorfs_opts")
    [[ -n $keep_logs ]] && lag_args+=(--keep-logs "$keep_logs/async_lag")
    "$script_dir/async_lag.sh" "${lag_args[@]}" &
    lag_pid=$!
    lag_rc=0
    wait "$lag_pid" || lag_rc=$?
    lag_pid=""
    if [[ $lag_rc -ne 0 || ! -s $lag_json ]]; then
      python3 "$report" lag-unavailable "bench/async_lag.sh exited with status $lag_rc" >"$lag_json"
    fi
  fi
fi

# ---- report -------------------------------------------------------------------------------
printf 'elapsed_seconds\t%s\nloadavg_end\t%s\n' "$elapsed" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$meta"

echo
echo "== results (${elapsed} s of measuring; load average now $(cut -d' ' -f1-3 /proc/loadavg)) =="
report_args=(table --results "$results" --targets "$targets_tsv" --meta "$meta")
[[ -s $lag_json ]] && report_args+=(--lag "$lag_json")
[[ -n $json_out ]] && report_args+=(--json "$json_out")
python3 "$report" "${report_args[@]}"
[[ -n $json_out ]] && echo "JSON written to $json_out"
exit 0
