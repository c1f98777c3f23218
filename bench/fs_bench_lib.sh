# shellcheck shell=bash
# Helpers shared by bench/fs_bench.sh and bench/async_lag.sh (sourced, not run): FUSE
# daemons and mirrord started in the background, watched and ended by PID.
# The caller sets `set -euo pipefail` and owns the cleanup trap; nothing here kills by name.
# Results go back in globals (spawned_pid, wait_error, mirrord_pid, mirrord_port, mirrord_error).
# shellcheck disable=SC2034

readonly kMountWaitTenths=100  # a mount must appear within 10 s
readonly kStopWaitTenths=50    # 5 s for a daemon to exit after its unmount, and after TERM
readonly kMirrordWaitTenths=100 # mirrord must print "listening on" within 10 s

is_mounted() {
  awk -v m="$1" '$2 == m && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/self/mounts
}

# True once process $1 has exited, polling for up to $2 tenths of a second.
wait_exit() {
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$1" 2>/dev/null
}

# Ends our child $1: TERM, $2 tenths of a second (default 5 s), KILL; then reaps it.
# No-op for an empty PID.
stop_pid() {
  local pid=$1 tenths=${2:-$kStopWaitTenths}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" "$tenths" || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Unmounts $1 (fusermount3 -u, then umount -l) and ends daemon $2 by PID: an unmounted daemon
# gets 5 s to exit by itself, then TERM, then KILL. Either may be empty.
unmount_and_stop() {
  local mnt=$1 pid=$2 unmounted=0
  if [[ -n $mnt ]] && is_mounted "$mnt"; then
    if timeout 10 fusermount3 -u "$mnt" 2>/dev/null || timeout 10 umount -l "$mnt" 2>/dev/null; then
      unmounted=1
    else
      echo "bench: could not unmount $mnt" >&2
    fi
  fi
  if [[ -n $pid ]]; then
    if [[ $unmounted -eq 1 ]] && wait_exit "$pid" "$kStopWaitTenths"; then
      wait "$pid" 2>/dev/null || true
    else
      stop_pid "$pid"
    fi
  fi
  return 0
}

# Starts COMMAND in the background with RLIMIT_NOFILE $1 and output to $2; sets spawned_pid.
# The caller records the PID for its cleanup before waiting for the mount.
# Usage: spawn_daemon NOFILE LOG COMMAND...
spawn_daemon() {
  local nofile=$1 log=$2
  shift 2
  # The subshell execs the daemon: $! is the daemon's PID.
  (ulimit -n "$nofile" 2>/dev/null; exec "$@") >"$log" 2>&1 &
  spawned_pid=$!
}

# The last two non-empty lines of log $1 on one line, without sd-daemon level prefixes
# ("<3>"): a daemon's last line is often a summary ("invalid mount options") of the one before.
last_lines() {
  grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 2 | sed 's/^<[0-9]>//' |
    awk '{ printf "%s%s", (NR > 1 ? " / " : ""), $0 }'
}

# Waits up to 10 s for mount $1 of daemon $2 (log $3). Returns 0 once mounted; else 1 with
# the reason in wait_error (a daemon that exited has been reaped; one that did not mount
# in time is left to the caller, which still knows its PID).
wait_mount() {
  local mnt=$1 pid=$2 log=$3 i rc
  wait_error=""
  for ((i = 0; i < kMountWaitTenths; i++)); do
    is_mounted "$mnt" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      rc=0
      wait "$pid" || rc=$?
      wait_error="exited with status $rc: $(last_lines "$log")"
      return 1
    fi
    sleep 0.1
  done
  wait_error="mount did not appear within 10 s: $(last_lines "$log")"
  return 1
}

# Writes a fresh random secret to $1, mode 0600 (mirrord and mirrorfs refuse looser modes).
make_secret() {
  (umask 077 && head -c 32 /dev/urandom | base64 >"$1")
}

# Starts `mirrord serve` on 127.0.0.1 (port 0: the kernel picks) with state dir $2, secret $3
# and log $4, binary $1. On success sets mirrord_pid and mirrord_port and returns 0; on
# failure returns 1 with mirrord_error (and mirrord_pid set if it still runs: stop it).
start_mirrord() {
  local bin=$1 state_dir=$2 secret=$3 log=$4 i line
  mirrord_pid="" mirrord_port="" mirrord_error=""
  if [[ ! -x $bin ]]; then
    mirrord_error="$bin not built"
    return 1
  fi
  mkdir -p "$state_dir"
  "$bin" serve --listen 127.0.0.1:0 --state-dir "$state_dir" --secret-file "$secret" \
    >"$log" 2>&1 &
  mirrord_pid=$!
  for ((i = 0; i < kMirrordWaitTenths; i++)); do
    line=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null | head -n 1 || true)
    if [[ -n $line ]]; then
      mirrord_port=${line##*:}
      return 0
    fi
    if ! kill -0 "$mirrord_pid" 2>/dev/null; then
      wait "$mirrord_pid" 2>/dev/null || true
      mirrord_pid=""
      mirrord_error="mirrord exited: $(tail -n 1 "$log" 2>/dev/null)"
      return 1
    fi
    sleep 0.1
  done
  mirrord_error="mirrord printed no 'listening on' line within 10 s"
  return 1
}
