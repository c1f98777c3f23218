#!/bin/bash
# mirror-check.sh: a monitoring check (Nagios/Icinga plugin convention) for mirrorfs
# and mirrord. Prints one line and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
# An example to adapt; see docs/operations.md.
set -euo pipefail

readonly OK=0 WARNING=1 CRITICAL=2 UNKNOWN=3
MIRRORFS=${MIRRORFS:-mirrorfs}
MIRRORD=${MIRRORD:-mirrord}
readonly SEP=$'\x1f'  # field separator of the parsed JSON (not whitespace: empty fields stay)

usage() {
  cat <<'EOF'
Usage: mirror-check.sh --mirrorfs MOUNTPOINT [options]
       mirror-check.sh --mirrord [SOURCE] [options]

On a source machine, checks the mirrorfs mount with `mirrorfs status MOUNTPOINT --json`;
on a destination, checks mirrord's sources (or one SOURCE) with
`mirrord status [SOURCE] --json`. Prints one line:
  MIRROR OK|WARNING|CRITICAL|UNKNOWN - what | lag_seconds=...;WARN;CRIT lag_records=...

Options:
  --warn-lag SECONDS   WARNING above this lag (default 30)
  --crit-lag SECONDS   CRITICAL above this lag (default 300)
  --state-dir DIR      mirrord's state dir (default: mirrord's own default)
  --timeout SECONDS    bound on the status command (default 15)
  --parser jq|python3  how to read the JSON (default: $MIRROR_JSON_PARSER, else jq if
                       installed, else python3)
  -h, --help           this text
Environment: MIRRORFS, MIRRORD (the programs; default from PATH); MIRROR_JSON_PARSER
(jq or python3: how to read JSON; default jq when installed).

mirrorfs: OK when state is running and the link connected (or the mount is local-only)
and the lag is below the limits; WARNING while a baseline or resync runs; CRITICAL in
any other state (degraded, mirror-down, mirror-refused, mirror-fenced, journal-full,
cp-failing, journal-error).
mirrord: per source, CRITICAL when broken; WARNING when not healthy (not connected,
resyncing); lag limits as above; the worst source decides.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no daemon answers, unreadable
answer, usage error, no JSON parser).
EOF
}

die_unknown() {
  echo "MIRROR UNKNOWN - $*"
  exit "$UNKNOWN"
}

# 0 if $1 > $2 (decimal numbers).
greater() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }

# The JSON on stdin as SEP-separated fields, one line; $1 = mirrorfs|mirrord.
# mirrorfs: state link lag_seconds lag_records resync_percent last_error
# mirrord: one line per source: id state healthy connected lag_seconds lag_records reason
parse_json() {
  local kind=$1
  if [[ $parser == jq ]]; then
    if [[ $kind == mirrorfs ]]; then
      jq -r '[.state, (if .mirror == null then "local-only" else .mirror.link end),
              (.mirror.lag_seconds // 0), (.mirror.lag_records // 0),
              (.mirror.resync.percent // ""), (.mirror.last_error // "")]
             | map(tostring) | join("\u001f")'
    else
      jq -r '.sources[] | [.id, .state, .healthy, .connected, (.lag_seconds // 0),
              (.lag_records // 0), (.unhealthy_reason // "")]
             | map(tostring) | join("\u001f")'
    fi
  else
    python3 -c '
import json, sys
kind = sys.argv[1]
d = json.load(sys.stdin)
def s(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)
if kind == "mirrorfs":
    m = d.get("mirror")
    r = (m or {}).get("resync") or {}
    f = [d.get("state"), "local-only" if m is None else m.get("link"),
         (m or {}).get("lag_seconds", 0), (m or {}).get("lag_records", 0),
         r.get("percent", ""), (m or {}).get("last_error", "")]
    print("\x1f".join(s(x) for x in f))
else:
    for src in d.get("sources", []):
        f = [src.get("id"), src.get("state"), src.get("healthy"), src.get("connected"),
             src.get("lag_seconds", 0), src.get("lag_records", 0),
             src.get("unhealthy_reason", "")]
        print("\x1f".join(s(x) for x in f))
' "$kind"
  fi
}

# Raises the global verdict to $1 if it is worse (UNKNOWN counts below CRITICAL here).
rank() { case $1 in 0) echo 0 ;; 1) echo 1 ;; 3) echo 2 ;; 2) echo 3 ;; esac; }
raise() {
  if (($(rank "$1") > $(rank "$verdict"))); then verdict=$1; fi
}

lag_verdict() {  # $1 lag seconds -> OK/WARNING/CRITICAL
  if greater "$1" "$crit_lag"; then
    echo "$CRITICAL"
  elif greater "$1" "$warn_lag"; then
    echo "$WARNING"
  else
    echo "$OK"
  fi
}

check_mirrorfs() {
  local out rc=0
  out=$(timeout "$timeout_s" "$MIRRORFS" status "$target" --json --timeout "$timeout_s" 2>&1) || rc=$?
  # 0 running, 2 a degraded state (the JSON is printed in both cases), else no answer.
  if ((rc != 0 && rc != 2)); then
    die_unknown "mirrorfs $target: no answer (mirrorfs status exited $rc: ${out//$'\n'/ })"
  fi
  local line state link lag records percent last_error
  line=$(parse_json mirrorfs <<<"$out") || die_unknown "mirrorfs $target: unreadable status"
  IFS=$SEP read -r state link lag records percent last_error <<<"$line"
  local text="mirrorfs $target: state=$state link=$link lag=${lag}s ($records records)"
  case $state in
    running)
      if [[ $link == connected || $link == local-only ]]; then
        raise "$(lag_verdict "$lag")"
      else
        raise "$WARNING"  # running but the link says otherwise: transient
      fi
      ;;
    baseline | resync)
      raise "$WARNING"
      text+=" ${state} ${percent:-?}%"
      ;;
    *)
      raise "$CRITICAL"
      [[ -n $last_error ]] && text+=" last_error=$last_error"
      ;;
  esac
  summary=$text
  perf="lag_seconds=$lag;$warn_lag;$crit_lag lag_records=$records"
}

check_mirrord() {
  local out rc=0 args=(status)
  [[ -n $target ]] && args+=("$target")
  args+=(--json)
  [[ -n $state_dir ]] && args+=(--state-dir "$state_dir")
  out=$(timeout "$timeout_s" "$MIRRORD" "${args[@]}" 2>&1) || rc=$?
  # 0 healthy, 1 lagging/degraded, 2 broken (JSON printed); 3 unreachable or no such source.
  if ((rc > 2)); then
    die_unknown "mirrord${target:+ $target}: no answer (mirrord status exited $rc: ${out//$'\n'/ })"
  fi
  local lines
  lines=$(parse_json mirrord <<<"$out") || die_unknown "mirrord: unreadable status"
  [[ -n $lines ]] || die_unknown "mirrord: no sources"
  local id state healthy _connected lag records reason max_lag=0 max_records=0 parts=()
  while IFS=$SEP read -r id state healthy _connected lag records reason; do
    local part="$id: state=$state lag=${lag}s ($records records)"
    if [[ $state == broken ]]; then
      raise "$CRITICAL"
    elif [[ $healthy != true ]]; then
      raise "$WARNING"
    fi
    [[ $healthy != true && -n $reason ]] && part+=" ($reason)"
    raise "$(lag_verdict "$lag")"
    greater "$lag" "$max_lag" && max_lag=$lag
    ((records > max_records)) && max_records=$records
    parts+=("$part")
  done <<<"$lines"
  local IFS=';'
  summary="mirrord ${parts[*]}"
  summary=${summary//;/; }
  perf="lag_seconds=$max_lag;$warn_lag;$crit_lag lag_records=$max_records"
}

kind="" target="" state_dir="" warn_lag=30 crit_lag=300 timeout_s=15 parser=""
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit "$OK"
      ;;
    --mirrorfs)
      kind=mirrorfs
      target=${2:?--mirrorfs needs a MOUNTPOINT}
      shift
      ;;
    --mirrord)
      kind=mirrord
      if [[ ${2:-} != "" && ${2:-} != -* ]]; then
        target=$2
        shift
      fi
      ;;
    --warn-lag | --crit-lag | --state-dir | --timeout | --parser)
      [[ $# -ge 2 ]] || die_unknown "usage: $1 needs a value"
      case $1 in
        --warn-lag) warn_lag=$2 ;;
        --crit-lag) crit_lag=$2 ;;
        --state-dir) state_dir=$2 ;;
        --timeout) timeout_s=$2 ;;
        --parser) parser=$2 ;;
      esac
      shift
      ;;
    *) die_unknown "usage: unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ -n $kind ]] || die_unknown "usage: give --mirrorfs MOUNTPOINT or --mirrord [SOURCE] (see --help)"
for n in "$warn_lag" "$crit_lag" "$timeout_s"; do
  [[ $n =~ ^[0-9]+([.][0-9]+)?$ ]] || die_unknown "usage: '$n' is not a number"
done
parser=${parser:-${MIRROR_JSON_PARSER:-}}
if [[ -z $parser ]]; then
  if command -v jq >/dev/null; then parser=jq; else parser=python3; fi
fi
[[ $parser == jq || $parser == python3 ]] || die_unknown "usage: --parser jq or python3"
command -v "$parser" >/dev/null || die_unknown "$parser is not installed"

verdict=$OK summary="" perf=""
if [[ $kind == mirrorfs ]]; then check_mirrorfs; else check_mirrord; fi
names=(OK WARNING CRITICAL UNKNOWN)
echo "MIRROR ${names[$verdict]} - $summary | $perf"
exit "$verdict"
