#!/bin/bash
# mirror-failover.sh: unplanned failover, run on the DESTINATION (the machine running
# mirrord) after the source machine died. Promotes the source's image and, if asked,
# mounts it with mirrorfs. An example to adapt; see docs/operations.md.
set -euo pipefail

readonly EX_OK=0 EX_USAGE=1 EX_REFUSED=2 EX_FAILED=3
MIRRORFS=${MIRRORFS:-mirrorfs}
MIRRORD=${MIRRORD:-mirrord}

usage() {
  cat <<'EOF'
Usage: mirror-failover.sh SOURCE [options]

On the destination: checks that SOURCE is not connected to mirrord (and stays so for
--settle seconds), runs `mirrord promote SOURCE --json`, prints the mount command, and
with --mount MNT mounts the promoted image there with mirrorfs and checks the mount
with `mirrorfs status`. Without --yes it only checks and says what it would do.

Options:
  --state-dir DIR       mirrord's state dir (default /var/lib/mirrord)
  --mount MNT           mount the promoted image at MNT (an existing directory)
  --journal FILE        journal of the new mount (default: mirrorfs's default,
                        /var/lib/mirrorfs/SOURCE/journal; it must not be the old
                        source's journal copied over)
  --mount-options OPTS  more -o options for mirrorfs, e.g.
                        "allow_other,mirror=HOST:7400,secret_file=/etc/mirrorfs/s"
  --settle SECONDS      how long SOURCE must stay disconnected (default 10; the
                        source reconnects within 5 s when only the link broke)
  --force               pass --force to mirrord promote (promote an image that may
                        miss records: mid-baseline, mid-resync; read what it prints)
  --yes                 really promote (without it: a dry run that exits 2)
  --timeout SECONDS     bound on each command and on waiting for the mount (default 120)
  -h, --help            this text
Environment: MIRRORFS, MIRRORD (the programs; default from PATH); MIRROR_JSON_PARSER
(jq or python3: how to read JSON; default jq when installed).

Exit codes: 0 promoted (or already promoted) and, with --mount, mounted and running;
1 usage error; 2 refused: SOURCE is connected, no --yes, or mirrord promote refused
(its reason is printed; --force overrides that last one); 3 failed: mirrord promote
failed, the mount failed, or the mount did not reach state running in time.
EOF
}

PROG=mirror-failover
# shellcheck source=etc/mirror-lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/mirror-lib.sh"

# 0 if SOURCE is connected to the running mirrord. A stopped mirrord (status exit 3)
# counts as not connected: promote works on the state dir then.
source_connected() {
  local out rc=0
  out=$(timeout "$timeout_s" "$MIRRORD" status "$source" --json --state-dir "$state_dir" 2>/dev/null) ||
    rc=$?
  ((rc == 3)) && return 1
  [[ $(json_get '.sources[0].connected' <<<"$out") == true ]]
}

source="" state_dir=/var/lib/mirrord mnt="" journal="" mount_opts="" settle=10
force=0 yes=0 timeout_s=120
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit "$EX_OK"
      ;;
    --force) force=1 ;;
    --yes) yes=1 ;;
    --state-dir | --mount | --journal | --mount-options | --settle | --timeout)
      [[ $# -ge 2 ]] || fail "$EX_USAGE" "$1 needs a value (see --help)"
      case $1 in
        --state-dir) state_dir=$2 ;;
        --mount) mnt=$2 ;;
        --journal) journal=$2 ;;
        --mount-options) mount_opts=$2 ;;
        --settle) settle=$2 ;;
        --timeout) timeout_s=$2 ;;
      esac
      shift
      ;;
    -*) fail "$EX_USAGE" "unknown option '$1' (see --help)" ;;
    *)
      [[ -z $source ]] || fail "$EX_USAGE" "one SOURCE only (see --help)"
      source=$1
      ;;
  esac
  shift
done
[[ -n $source ]] || fail "$EX_USAGE" "no SOURCE (see --help)"
[[ $settle =~ ^[0-9]+$ && $timeout_s =~ ^[0-9]+$ ]] ||
  fail "$EX_USAGE" "--settle and --timeout take whole seconds"
[[ -z $mnt || -d $mnt ]] || fail "$EX_USAGE" "mountpoint $mnt is not a directory"
command -v jq >/dev/null || command -v python3 >/dev/null ||
  fail "$EX_FAILED" "needs jq or python3 to read JSON"

# 1. The source must really be gone: not connected now, nor during --settle seconds.
for ((i = 0; i <= settle; i++)); do
  if source_connected; then
    fail "$EX_REFUSED" "refused: $source is connected to mirrord: it is alive. Stop its" \
      "mirrorfs first, or use a planned switchover (mirror-switchover.sh)."
  fi
  if ((i < settle)); then sleep 1; fi
done
log "$source has not been connected for ${settle}s"

promote=("$MIRRORD" promote "$source" --state-dir "$state_dir" --json)
((force)) && promote+=(--force)
if ((!yes)); then
  log "dry run: would run: ${promote[*]}"
  [[ -n $mnt ]] && log "dry run: then mount the image at $mnt"
  fail "$EX_REFUSED" "nothing done; rerun with --yes to promote"
fi

# 2. Promote. 0 done (or already promoted), 2 refused, 3 failed.
rc=0
out=$(timeout "$timeout_s" "${promote[@]}") || rc=$?
case $rc in
  0) ;;
  2)
    reason=$(json_get '.reason' <<<"$out" || true)
    fail "$EX_REFUSED" "mirrord promote refused: ${reason:-$out}"
    ;;
  *) fail "$EX_FAILED" "mirrord promote failed (exit $rc): $out" ;;
esac
image=$(json_get '.image' <<<"$out" || true)
[[ -n $image ]] || image=$state_dir/$source/image
log "promoted: epoch $(json_get '.epoch' <<<"$out" || true)," \
  "image at seq $(json_get '.promoted_seq' <<<"$out" || true): $image"
suggested=$(json_get '.mount_command' <<<"$out" || true)
[[ -n $suggested ]] && log "mirrord suggests: $suggested"
if [[ -z $mnt ]]; then
  echo "mirrorfs $image MOUNTPOINT -o source_id=$source"
  exit "$EX_OK"
fi

# 3. Mount the image with mirrorfs (it becomes the volume; mirror onward with mirror=).
opts="source_id=$source"
[[ -n $journal ]] && opts+=",journal=$journal"
[[ -n $mount_opts ]] && opts+=",$mount_opts"
rc=0
timeout "$timeout_s" "$MIRRORFS" "$image" "$mnt" -o "$opts" || rc=$?
((rc == 0)) || fail "$EX_FAILED" "mirrorfs $image $mnt -o $opts failed (exit $rc)"

# 4. Wait (bounded) for state running: with mirror= a baseline/resync may run first.
state=""
for ((i = 0; i < timeout_s; i++)); do
  rc=0
  out=$("$MIRRORFS" status "$mnt" --json --timeout 10) || rc=$?
  state=$(json_get '.state' <<<"$out" || true)
  ((rc == 0)) && break
  sleep 1
done
((rc == 0)) || fail "$EX_FAILED" "mounted at $mnt, but its state is '${state:-no answer}'" \
  "after ${timeout_s}s (mirrorfs status exited $rc)"
log "mounted $image at $mnt: state $state"
exit "$EX_OK"
