#!/bin/bash
# mirror-switchover.sh: planned switchover, run on the SOURCE machine once its clients
# have stopped: a final consistency point, verify, unmount; then, on the destination
# (over ssh, or here with --dest local), promote the image and optionally mount it.
# An example to adapt; see docs/operations.md.
set -euo pipefail

readonly EX_OK=0 EX_USAGE=1 EX_REFUSED=2 EX_FAILED=3
MIRRORFS=${MIRRORFS:-mirrorfs}
MIRRORD=${MIRRORD:-mirrord}

usage() {
  cat <<'EOF'
Usage: mirror-switchover.sh --mount MNT --dest HOST|local [options]

Run on the source machine after its clients stopped using MNT:
  1. mirrorfs status MNT --json     state running, link connected (else refused)
  2. mirrorfs checkpoint MNT        everything applied to mirrord's image
  3. mirrorfs verify MNT            image and BACKING identical (else refused)
  4. fusermount3 -u MNT             busy: clients still use it (refused)
then on the destination (ssh HOST, or this machine with --dest local):
  5. mirrord status SOURCE --json   disconnected, received_seq >= the source's last_seq
  6. mirrord promote SOURCE --json  the image becomes the volume (epoch + 1)
  7. with --new-mount MNT2: mirrorfs IMAGE MNT2 -o source_id=SOURCE,... and wait
     until its status is running.
Without --yes it runs step 1 and says what it would do.

Options:
  --mount MNT           the source's mirrorfs mountpoint (required)
  --dest HOST|local     where mirrord runs: an ssh destination, or "local"
                        (default: $DEST)
  --state-dir DIR       mirrord's state dir on the destination (default /var/lib/mirrord)
  --new-mount MNT2      mount the promoted image at MNT2 on the destination
  --journal FILE        journal of the new mount (default: mirrorfs's default)
  --mount-options OPTS  more -o options for the new mount (e.g. mirror=A:7400,...)
  --yes                 really switch over
  --timeout SECONDS     bound on each step and wait (default 300)
  -h, --help            this text
Environment: MIRRORFS, MIRRORD (the programs; default from PATH), DEST; MIRROR_JSON_PARSER
(jq or python3: how to read JSON; default jq when installed).

Exit codes: 0 switched over (and mounted, with --new-mount); 1 usage error;
2 refused, nothing lost: not running/connected, differences found, the mount is
busy, no --yes, or promote refused; 3 failed: a command failed or timed out (the
message says at which step; steps before it stay done).
EOF
}

PROG=mirror-switchover
# shellcheck source=etc/mirror-lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/mirror-lib.sh"

# Runs a command on the destination, bounded by the timeout; ssh exits 255 when it
# cannot connect.
run_dest() {
  if [[ $dest == local ]]; then
    timeout "$timeout_s" "$@"
  else
    timeout "$timeout_s" ssh -o BatchMode=yes -o ConnectTimeout=10 "$dest" "$(printf '%q ' "$@")"
  fi
}

mnt="" dest=${DEST:-} state_dir=/var/lib/mirrord new_mnt="" journal="" mount_opts=""
yes=0 timeout_s=300
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit "$EX_OK"
      ;;
    --yes) yes=1 ;;
    --mount | --dest | --state-dir | --new-mount | --journal | --mount-options | --timeout)
      [[ $# -ge 2 ]] || fail "$EX_USAGE" "$1 needs a value (see --help)"
      case $1 in
        --mount) mnt=$2 ;;
        --dest) dest=$2 ;;
        --state-dir) state_dir=$2 ;;
        --new-mount) new_mnt=$2 ;;
        --journal) journal=$2 ;;
        --mount-options) mount_opts=$2 ;;
        --timeout) timeout_s=$2 ;;
      esac
      shift
      ;;
    *) fail "$EX_USAGE" "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ -n $mnt ]] || fail "$EX_USAGE" "no --mount MNT (see --help)"
[[ -n $dest ]] || fail "$EX_USAGE" "no --dest HOST|local and no \$DEST (see --help)"
[[ $timeout_s =~ ^[0-9]+$ ]] || fail "$EX_USAGE" "--timeout takes whole seconds"
command -v jq >/dev/null || command -v python3 >/dev/null ||
  fail "$EX_FAILED" "needs jq or python3 to read JSON"

# 1. A clean, connected mirror.
rc=0
status=$("$MIRRORFS" status "$mnt" --json --timeout 10) || rc=$?
((rc != 3)) || fail "$EX_FAILED" "step 1: no mirrorfs daemon answers for $mnt"
state=$(json_get .state <<<"$status")
link=$(json_get .mirror.link <<<"$status")
source=$(json_get .source_id <<<"$status")
if ((rc != 0)) || [[ $state != running || $link != connected ]]; then
  fail "$EX_REFUSED" "step 1: refused: $mnt is in state '$state', link '${link:-none}';" \
    "a switchover needs state running and link connected"
fi
log "step 1: $mnt (source $source) is running, link connected"
if ((!yes)); then
  log "dry run: would checkpoint, verify and unmount $mnt, then on $dest:" \
    "$MIRRORD promote $source --state-dir $state_dir --json"
  fail "$EX_REFUSED" "nothing done; stop the clients of $mnt, then rerun with --yes"
fi

# 2. Final consistency point: mirrord applies everything up to it.
rc=0
out=$("$MIRRORFS" checkpoint "$mnt" --timeout "$timeout_s" 2>&1) || rc=$?
((rc == 0)) || fail "$EX_FAILED" "step 2: mirrorfs checkpoint exited $rc: $out"
log "step 2: $out"

# 3. Verify: 0 identical, 1 differences, 2 could not compare, 3 no daemon.
rc=0
out=$("$MIRRORFS" verify "$mnt" --timeout "$timeout_s" 2>&1) || rc=$?
case $rc in
  0) log "step 3: image and BACKING are identical" ;;
  1) fail "$EX_REFUSED" "step 3: refused: differences (are clients still writing?):"$'\n'"$out" ;;
  *) fail "$EX_FAILED" "step 3: mirrorfs verify exited $rc: $out" ;;
esac
last_seq=$("$MIRRORFS" status "$mnt" --json --timeout 10 | json_get .last_seq || true)

# 4. Unmount (a last checkpoint), and wait (bounded) for the daemon to leave.
rc=0
out=$(fusermount3 -u "$mnt" 2>&1) || rc=$?
((rc == 0)) || fail "$EX_REFUSED" "step 4: refused: cannot unmount $mnt (clients still use it?): $out"
gone=0
for ((i = 0; i < timeout_s * 5; i++)); do
  rc=0
  "$MIRRORFS" status "$mnt" --json --timeout 5 >/dev/null 2>&1 || rc=$?
  if ((rc == 3)); then
    gone=1
    break
  fi
  sleep 0.2
done
((gone)) || fail "$EX_FAILED" "step 4: the mirrorfs daemon of $mnt still answers after ${timeout_s}s"
log "step 4: $mnt unmounted (source last_seq ${last_seq:-?})"

# 5. The destination saw the source go, and has every record (when mirrord runs).
for ((i = 0; i < timeout_s; i++)); do
  rc=0
  out=$(run_dest "$MIRRORD" status "$source" --json --state-dir "$state_dir") || rc=$?
  ((rc == 255)) && fail "$EX_FAILED" "step 5: ssh $dest failed"
  ((rc == 3)) && break  # mirrord stopped: promote works on the state dir
  [[ $(json_get '.sources[0].connected' <<<"$out") == false ]] && break
  sleep 1
done
if ((rc != 3)); then
  [[ $(json_get '.sources[0].connected' <<<"$out") == false ]] ||
    fail "$EX_FAILED" "step 5: $source is still connected to mirrord on $dest"
  received=$(json_get '.sources[0].received_seq' <<<"$out")
  if [[ -n $last_seq && -n $received ]] && ((received < last_seq)); then
    fail "$EX_REFUSED" "step 5: refused: mirrord received up to seq $received, the source" \
      "journaled $last_seq: mount $mnt again to ship the rest, then retry"
  fi
  log "step 5: mirrord on $dest: $source disconnected, received_seq $received"
else
  log "step 5: mirrord on $dest is not running; promoting on its state dir"
fi

# 6. Promote: 0 done (or already), 2 refused, 3 failed.
rc=0
out=$(run_dest "$MIRRORD" promote "$source" --state-dir "$state_dir" --json) || rc=$?
case $rc in
  0) ;;
  2) fail "$EX_REFUSED" "step 6: mirrord promote refused: $out" ;;
  *) fail "$EX_FAILED" "step 6: mirrord promote exited $rc: $out" ;;
esac
image=$(json_get .image <<<"$out" || true)
[[ -n $image ]] || image=$state_dir/$source/image
log "step 6: promoted on $dest: epoch $(json_get .epoch <<<"$out" || true), image $image"
if [[ -z $new_mnt ]]; then
  echo "on $dest: $MIRRORFS $image MOUNTPOINT -o source_id=$source"
  exit "$EX_OK"
fi

# 7. Mount the image on the destination and wait for state running.
opts="source_id=$source"
[[ -n $journal ]] && opts+=",journal=$journal"
[[ -n $mount_opts ]] && opts+=",$mount_opts"
rc=0
out=$(run_dest "$MIRRORFS" "$image" "$new_mnt" -o "$opts" 2>&1) || rc=$?
((rc == 0)) || fail "$EX_FAILED" "step 7: mirrorfs $image $new_mnt -o $opts exited $rc: $out"
for ((i = 0; i < timeout_s; i++)); do
  rc=0
  out=$(run_dest "$MIRRORFS" status "$new_mnt" --json --timeout 10) || rc=$?
  ((rc == 0)) && break
  sleep 1
done
((rc == 0)) || fail "$EX_FAILED" "step 7: $new_mnt on $dest is in state" \
  "'$(json_get .state <<<"$out" || true)' after ${timeout_s}s"
log "step 7: $image mounted at $new_mnt on $dest: state running"
exit "$EX_OK"
