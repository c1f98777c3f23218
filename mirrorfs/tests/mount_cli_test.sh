#!/usr/bin/env bash
# The mount as an admin runs it (issue 3, "How a user runs it"): mount.fuse3 (what
# `mount -t fuse.mirrorfs` and fstab lines run; it calls `mirrorfs BACKING MNT -o opts`),
# `mount -t` and an fstab line (mount -T FILE) when mirrorfs is installed where mount(8)
# looks (it resets PATH), findmnt -t fuse.mirrorfs, `mirrorfs status|checkpoint` and their exit codes, and the
# one-line mount failures with exit code 32 (1 for usage errors).
#   mount_cli_test.sh PATH/TO/mirrorfs
# Needs root and /dev/fuse. Cleans up its mounts and the daemons it started (by PID)
# whatever happens.
set -uo pipefail
bin=$(readlink -f "$1")
scratch=$(mktemp -d /tmp/mirrorfs-mountcli.XXXXXX)
mkdir -p "$scratch/bin" "$scratch/backing" "$scratch/mnt" "$scratch/run"
ln -s "$bin" "$scratch/bin/mirrorfs"
export PATH="$scratch/bin:$PATH" MIRRORFS_RUN_DIR="$scratch/run"
failures=0
pids=()

cleanup() {
  if findmnt -rn "$scratch/mnt" >/dev/null 2>&1; then
    umount "$scratch/mnt" 2>/dev/null || timeout 10 umount -l "$scratch/mnt" || true
  fi
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_rc() {  # expect_rc WANT DESCRIPTION CMD...
  local want=$1 what=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc != "$want" ]]; then fail "$what: exit $rc, want $want: $out"; else echo "ok: $what"; fi
  last_out=$out
}
remember_pid() {
  local pid
  pid=$(mirrorfs status "$scratch/mnt" --json 2>/dev/null | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
  [[ -n $pid ]] && pids+=("$pid")
}
opts="source_id=mountcli,journal=$scratch/journal,journal_size=8M"

# mount.fuse3, as `mount -t fuse.mirrorfs` runs it.
expect_rc 0 "mount.fuse3 -t fuse.mirrorfs" mount.fuse3 "$scratch/backing" "$scratch/mnt" -t fuse.mirrorfs -o "$opts"
remember_pid
findmnt -t fuse.mirrorfs "$scratch/mnt" >/dev/null || fail "findmnt -t fuse.mirrorfs does not list the mount"
src=$(findmnt -rn -o SOURCE "$scratch/mnt")
[[ $src == "$scratch/backing" ]] || fail "fsname is '$src', want $scratch/backing"
echo data > "$scratch/mnt/file" || fail "write through the mount"
[[ $(cat "$scratch/backing/file" 2>/dev/null) == data ]] || fail "the write did not reach BACKING"

expect_rc 0 "status while running" mirrorfs status "$scratch/mnt"
grep -q "state: *running" <<<"$last_out" || fail "status does not say running: $last_out"
expect_rc 0 "status --json" mirrorfs status "$scratch/mnt" --json
for key in state last_seq cp_seq journal_bytes journal_used_bytes; do
  grep -q "\"$key\":" <<<"$last_out" || fail "status --json lacks $key: $last_out"
done
last_seq=$(sed -n 's/.*"last_seq":\([0-9]*\).*/\1/p' <<<"$last_out")
[[ ${last_seq:-0} -ge 2 ]] || fail "last_seq $last_seq: the create and the write were not journaled"
expect_rc 0 "checkpoint" mirrorfs checkpoint "$scratch/mnt"
expect_rc 0 "status after checkpoint" mirrorfs status "$scratch/mnt" --json
cp_seq=$(sed -n 's/.*"cp_seq":\([0-9]*\).*/\1/p' <<<"$last_out")
used=$(sed -n 's/.*"journal_used_bytes":\([0-9]*\).*/\1/p' <<<"$last_out")
[[ $cp_seq == "$last_seq" ]] || fail "cp_seq $cp_seq after checkpoint, want $last_seq"
[[ $used == 0 ]] || fail "journal_used_bytes $used after checkpoint, want 0"

# Failures while mounted: busy mountpoint (32), a second mount of the journal elsewhere.
expect_rc 32 "mount over a busy mountpoint" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts"
expect_rc 0 "umount" umount "$scratch/mnt"
expect_rc 3 "status with no daemon" mirrorfs status "$scratch/mnt"
expect_rc 3 "checkpoint with no daemon" mirrorfs checkpoint "$scratch/mnt"

# mount(8) itself and an fstab line: mount runs helpers with a fixed PATH, so only when
# this build is what it would find (after `cmake --install build --prefix /usr`).
installed=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v mirrorfs || true)
if [[ -n $installed && $(readlink -f "$installed") == "$bin" ]]; then
  printf '%s %s fuse.mirrorfs %s 0 0\n' "$scratch/backing" "$scratch/mnt" "$opts" > "$scratch/fstab"
  expect_rc 0 "mount from an fstab line" mount -T "$scratch/fstab" "$scratch/mnt"
  remember_pid
  [[ $(cat "$scratch/mnt/file" 2>/dev/null) == data ]] || fail "the file is not there after the fstab mount"
  expect_rc 0 "umount (fstab mount)" umount "$scratch/mnt"
else
  echo "skip: mount -t / fstab (mount(8) would run '${installed:-nothing}', not $bin)"
fi

# One-line failures with their exit codes.
expect_rc 32 "missing BACKING" mirrorfs "$scratch/nope" "$scratch/mnt" -o "$opts"
grep -q "nope" <<<"$last_out" || fail "the message does not name BACKING: $last_out"
expect_rc 32 "missing mountpoint" mirrorfs "$scratch/backing" "$scratch/nomnt" -o "$opts"
expect_rc 1 "unknown config key" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts,config=/dev/null"
echo '{"cp_intervall": "1s"}' > "$scratch/bad.json"
expect_rc 1 "misspelt key in the config file" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts,config=$scratch/bad.json"
grep -q "cp_interval" <<<"$last_out" || fail "no suggestion for the misspelt key: $last_out"
mkdir -p "$scratch/other"
expect_rc 32 "journal of another volume" mirrorfs "$scratch/other" "$scratch/mnt" -o "$opts"
grep -q "belongs to" <<<"$last_out" || fail "the message does not say whose journal it is: $last_out"
expect_rc 32 "journal too small" mirrorfs "$scratch/backing" "$scratch/mnt" \
  -o "source_id=mountcli,journal=$scratch/small,journal_size=1M"
grep -q "too small" <<<"$last_out" || fail "the message does not say too small: $last_out"
head -c 8192 /dev/urandom | dd of="$scratch/journal" conv=notrunc status=none
expect_rc 32 "damaged journal" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts"
grep -q "damaged" <<<"$last_out" || fail "the message does not say damaged: $last_out"
expect_rc 1 "mirror= without secret_file=" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts,mirror=127.0.0.1:1"
grep -q "secret_file" <<<"$last_out" || fail "the message does not name secret_file: $last_out"
expect_rc 1 "on_disconnect= without mirror=" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts,on_disconnect=block"
expect_rc 1 "a mode that does not exist" mirrorfs "$scratch/backing" "$scratch/mnt" -o "$opts,mirror=127.0.0.1:1,mode=fast"
echo "not so secret" > "$scratch/open-secret"
chmod 644 "$scratch/open-secret"
expect_rc 32 "a secret file others can read" mirrorfs "$scratch/backing" "$scratch/mnt" \
  -o "$opts,mirror=127.0.0.1:1,secret_file=$scratch/open-secret"
grep -q "chmod 600" <<<"$last_out" || fail "the message does not say how to fix the secret file: $last_out"
findmnt -rn "$scratch/mnt" >/dev/null && fail "a failed mount left something mounted"

if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
