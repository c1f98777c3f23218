# Shared by the example scripts in this directory (sourced, not run): messages and
# reading one field of a JSON answer. The sourcing script sets PROG (its name) first.
# shellcheck shell=bash

log() { echo "$PROG: $*" >&2; }
fail() {  # $1: exit code, then the message
  local code=$1
  shift
  log "$*"
  exit "$code"
}

# One field of the JSON on stdin ($1: a path such as .image, .mirror.link or
# .sources[0].connected); prints nothing when it is absent or null. With
# MIRROR_JSON_PARSER=jq or python3 that one, else jq when installed, else python3.
json_get() {
  local parser=${MIRROR_JSON_PARSER:-}
  if [[ -z $parser ]]; then command -v jq >/dev/null && parser=jq || parser=python3; fi
  if [[ $parser == jq ]]; then
    jq -r "$1 | if . == null then empty else tostring end"
  else
    python3 -c '
import json, re, sys
v = json.load(sys.stdin)
for key, index in re.findall(r"\.(\w+)|\[(\d+)\]", sys.argv[1]):
    if key:
        v = v.get(key) if isinstance(v, dict) else None
    else:
        v = v[int(index)] if isinstance(v, list) and int(index) < len(v) else None
if v is not None:
    print(str(v).lower() if isinstance(v, bool) else v)
' "$1"
  fi
}
