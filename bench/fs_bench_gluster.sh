# shellcheck shell=bash
# GlusterFS peer of bench/fs_bench.sh (sourced, not run; --peers): a replica-2 volume of
# two bricks in the scratch dir on this host, over loopback, for the glusterfs FUSE client.
#
#   gluster_setup DIR      installs glusterfs-server with apt-get if it is missing, starts
#                          glusterd unless one answers, creates and starts the volume with
#                          bricks DIR/brick1 and DIR/brick2. Sets gluster_host, gluster_volume;
#                          on failure returns 1 with gluster_error.
#   gluster_mount_cmd MNT LOG   prints the client command (glusterfs -N, in the foreground).
#   gluster_teardown       stops and deletes the volume, ends the bricks and self-heal daemon
#                          of the volume if they outlive the stop, and glusterd if we started it.
#
# The gluster CLI refuses 127.0.0.1 and "localhost" as brick hosts, so the bricks are named by
# a host name that resolves to a loopback address (Debian maps the machine's name to
# 127.0.1.1; some images map it to 127.0.0.1). glusterd keeps its own state in
# /var/lib/glusterd and logs in /var/log/glusterfs (the volume is deleted at the end; the
# node's UUID file stays, as after any glusterd start). Everything is ended by PID.
# Needs fs_bench_lib.sh (wait_exit, stop_pid, kStopWaitTenths).
# shellcheck disable=SC2154 # kStopWaitTenths comes from fs_bench_lib.sh

readonly kGlusterCliTimeout=60 # seconds for one gluster CLI call
readonly kGlusterdWaitTenths=200 # glusterd must answer within 20 s

gluster_host="" gluster_volume="" gluster_error=""
gluster_glusterd_pid=""   # set only when this script started glusterd
gluster_volume_created=0
gluster_daemon_pids=()    # bricks and self-heal daemon of our volume (glusterd's children)

gcli() {
  timeout "$kGlusterCliTimeout" gluster --mode=script "$@"
}

# True while $1 runs and is not a zombie (glusterd reaps its children only when it exits).
pid_running() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null &&
    [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# Installs glusterfs-server (which pulls in the client) if glusterd is missing.
gluster_ensure_installed() {
  command -v glusterd >/dev/null && command -v gluster >/dev/null &&
    command -v glusterfs >/dev/null && return 0
  if ! command -v apt-get >/dev/null; then
    gluster_error="glusterfs-server is not installed and there is no apt-get"
    return 1
  fi
  echo "peers:     glusterfs-server is not installed; installing it with apt-get" >&2
  local log="$1/apt-get.log"
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends \
    glusterfs-server >"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q >>"$log" 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
      --no-install-recommends glusterfs-server >>"$log" 2>&1; then
      gluster_error="apt-get install glusterfs-server failed: $(tail -n 1 "$log")"
      return 1
    fi
  fi
  command -v glusterd >/dev/null || { gluster_error="glusterd missing after install"; return 1; }
}

# A name that resolves (IPv4) to 127.x and that the gluster CLI accepts as a brick host.
gluster_find_host() {
  local name addr candidates=()
  candidates+=("$(hostname 2>/dev/null || true)" "$(hostname -f 2>/dev/null || true)")
  # Then every other name /etc/hosts gives a loopback address.
  while read -r addr name; do
    [[ $addr == 127.* ]] && candidates+=("$name")
  done < <(awk '!/^[[:space:]]*#/ && NF >= 2 { for (i = 2; i <= NF; i++) print $1, $i }' \
    /etc/hosts 2>/dev/null || true)
  for name in "${candidates[@]}"; do
    [[ -n $name && $name != localhost* && $name != ip6-* ]] || continue
    addr=$(getent ahostsv4 "$name" 2>/dev/null | awk 'NR == 1 { print $1 }')
    if [[ $addr == 127.* ]]; then
      gluster_host=$name
      return 0
    fi
  done
  gluster_error="no host name resolves to a loopback address (the gluster CLI refuses"
  gluster_error+=" 127.0.0.1 and localhost): add one to /etc/hosts"
  return 1
}

gluster_start_glusterd() {
  local dir=$1 i
  gcli pool list >/dev/null 2>&1 && return 0 # one runs already: use it, leave it running
  glusterd -N -l "$dir/glusterd.log" >"$dir/glusterd.out" 2>&1 &
  gluster_glusterd_pid=$!
  for ((i = 0; i < kGlusterdWaitTenths; i++)); do
    gcli pool list >/dev/null 2>&1 && return 0
    if ! kill -0 "$gluster_glusterd_pid" 2>/dev/null; then
      wait "$gluster_glusterd_pid" 2>/dev/null || true
      gluster_glusterd_pid=""
      gluster_error="glusterd exited: $(tail -n 1 "$dir/glusterd.log" 2>/dev/null)"
      return 1
    fi
    sleep 0.1
  done
  gluster_error="glusterd did not answer within 20 s"
  return 1
}

gluster_setup() {
  local dir=$1 out
  mkdir -p "$dir/brick1" "$dir/brick2"
  gluster_ensure_installed "$dir" || return 1
  gluster_find_host || return 1
  gluster_start_glusterd "$dir" || return 1
  gluster_volume="mirrorfs-bench-$$"
  # replica 2 asks to confirm (split-brain warning; --mode=script answers yes); force:
  # both bricks on one host, and on the root filesystem.
  if ! out=$(gcli volume create "$gluster_volume" replica 2 "$gluster_host:$dir/brick1" \
    "$gluster_host:$dir/brick2" force 2>&1); then
    gluster_error="volume create: $out"
    return 1
  fi
  gluster_volume_created=1
  if ! out=$(gcli volume start "$gluster_volume" 2>&1); then
    gluster_error="volume start: $out"
    return 1
  fi
  # Brick and self-heal daemon PIDs (last column of their status lines), to end them if the
  # volume stop leaves them behind.
  mapfile -t gluster_daemon_pids < <(gcli volume status "$gluster_volume" 2>/dev/null |
    awk '/^(Brick |Self-heal Daemon)/ && $NF ~ /^[0-9]+$/ && $NF > 0 { print $NF }')
  return 0
}

gluster_mount_cmd() { # MNT LOG
  printf '%s\n' glusterfs -N "--volfile-server=$gluster_host" "--volfile-id=$gluster_volume" \
    -l "$2" "$1"
}

# Call after the client is unmounted.
gluster_teardown() {
  local pid i
  if [[ $gluster_volume_created -eq 1 ]]; then
    gcli volume stop "$gluster_volume" >/dev/null 2>&1 ||
      gcli volume stop "$gluster_volume" force >/dev/null 2>&1 ||
      echo "bench: gluster volume stop $gluster_volume failed" >&2
    gcli volume delete "$gluster_volume" >/dev/null 2>&1 ||
      echo "bench: gluster volume delete $gluster_volume failed; delete it by hand" >&2
    gluster_volume_created=0
  fi
  for pid in "${gluster_daemon_pids[@]}"; do
    pid_running "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < kStopWaitTenths; i++)); do
      pid_running "$pid" || break
      sleep 0.1
    done
    if pid_running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  gluster_daemon_pids=()
  if [[ -n $gluster_glusterd_pid ]]; then
    stop_pid "$gluster_glusterd_pid"
    gluster_glusterd_pid=""
  fi
  return 0
}
