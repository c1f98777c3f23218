#!/usr/bin/env python3
"""Helper of bench/async_lag.sh: one timed run of the async lag workload, and the summary.

  async_lag.py run --mnt MNT --mirrorfs BIN --mirrord BIN --state-dir DIR --source ID
                   --backing DIR --run N [--files 2000] [--file-kib 64] [--big-mib 256]
      Writes the workload into MNT/lag-N (FILES files of FILE_KIB KiB, one write each,
      then one file of BIG_MIB MiB in 1 MiB writes; no fsync), then measures
        (a) received_ms: from the end of the workload (the last close returned) until
            `mirrord status --json` shows received_seq >= the `last_seq` that
            `mirrorfs status --json` reported right at the end; an upper bound: the
            first poll that sees it, counted to when that poll returned;
        (b) image_ms: from the end of the workload until `mirrorfs checkpoint MNT`,
            started as soon as (a) is done, returns (mirrord's image then holds it all),
      then compares the image's lag-N with BACKING's (sizes and content hashes) and
      removes lag-N through the mount (and checkpoints) for the next run. Prints one JSON
      object on stdout and a line for humans on stderr.
  async_lag.py error RUN MESSAGE
      Prints the JSON of a run that failed outside the helper (and MESSAGE on stderr).
  async_lag.py summary RUNS_JSONL [--json OUT]
      Medians over the runs; prints a short table, writes the JSON fs_bench_report.py reads.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

POLL_TIMEOUT_S = 120.0  # (a) gives up after this long
CHECKPOINT_TIMEOUT_S = 300
STATUS_TIMEOUT_S = 10
MAX_POLLS = 20000  # a bound on the polling loop besides the time


def run_json(argv, timeout):
    """Runs a status command and returns its JSON (exit codes 0 and 1 both print status)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}, no JSON: "
                           f"{p.stderr.strip()[-200:]}") from e


def source_status(args):
    """This source's entry of `mirrord status --json` ({} while mirrord does not know it)."""
    doc = run_json([args.mirrord, "status", "--state-dir", args.state_dir, "--json"],
                   STATUS_TIMEOUT_S)
    for s in doc.get("sources", []):
        if s.get("id") == args.source:
            return s
    return {}


def checkpoint(args):
    p = subprocess.run([args.mirrorfs, "checkpoint", args.mnt], capture_output=True, text=True,
                       timeout=CHECKPOINT_TIMEOUT_S, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"mirrorfs checkpoint exit {p.returncode}: {p.stderr.strip()[-200:]}")


def write_workload(root, files, file_kib, big_mib):
    os.mkdir(root)
    small = os.urandom(file_kib * 1024)
    chunk = os.urandom(1 << 20)
    total = 0
    for i in range(files):
        fd = os.open(os.path.join(root, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            total += os.write(fd, small)
        finally:
            os.close(fd)
    fd = os.open(os.path.join(root, "big"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(big_mib):
            total += os.write(fd, chunk)
    finally:
        os.close(fd)
    return total


def tree_digest(root):
    """name -> (size, blake2b of the content) for the regular files directly under root."""
    out = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        out[name] = (os.path.getsize(path), h.hexdigest())
    return out


def verify(args, sub):
    image_root = source_status(args).get("image") or os.path.join(args.state_dir, args.source,
                                                                  "image")
    image = os.path.join(image_root, sub)
    backing = os.path.join(args.backing, sub)
    if not os.path.isdir(image):
        return False, f"{image} does not exist"
    a, b = tree_digest(backing), tree_digest(image)
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()))
        return False, f"{len(diff)} differing entries, first {diff[0][0]}"
    return True, ""


def measure(args):
    sub = f"lag-{args.run}"
    root = os.path.join(args.mnt, sub)
    checkpoint(args)  # start from an applied, freed journal
    t0 = time.monotonic()
    nbytes = write_workload(root, args.files, args.file_kib, args.big_mib)
    t_end = time.monotonic()
    status = run_json([args.mirrorfs, "status", args.mnt, "--json"], STATUS_TIMEOUT_S)
    t_status = time.monotonic()
    last_seq = int(status["last_seq"])
    mirror = status.get("mirror") or {}
    if not mirror:
        raise RuntimeError("mirrorfs status has no 'mirror' object: not a mirrored mount")

    polls, prev_start, received_at, resolution = 0, t_status, None, None
    while polls < MAX_POLLS and time.monotonic() - t_end < POLL_TIMEOUT_S:
        start = time.monotonic()
        seq = int(source_status(args).get("received_seq", 0))
        polls += 1
        if seq >= last_seq:
            received_at = time.monotonic()
            resolution = received_at - prev_start
            break
        prev_start = start
    if received_at is None:
        raise RuntimeError(f"mirrord did not receive seq {last_seq} within {POLL_TIMEOUT_S:.0f} s")

    t_ck = time.monotonic()
    checkpoint(args)
    t_done = time.monotonic()
    ok, why = verify(args, sub)
    shutil.rmtree(root)
    checkpoint(args)
    return {
        "run": args.run, "bytes": nbytes, "workload_s": t_end - t0,
        "workload_mb_s": nbytes / 1e6 / (t_end - t0), "last_seq": last_seq,
        "lag_bytes_at_end": int(mirror.get("lag_bytes", 0)),
        "lag_records_at_end": int(mirror.get("lag_records", 0)),
        "link_at_end": mirror.get("link", ""), "status_ms": (t_status - t_end) * 1e3,
        # mirrorfs's own view in that status call: mirrord had acknowledged every record.
        "received_at_status": int(mirror.get("received_seq", 0)) >= last_seq,
        "received_ms": (received_at - t_end) * 1e3, "resolution_ms": resolution * 1e3,
        "polls": polls, "image_ms": (t_done - t_end) * 1e3, "checkpoint_ms": (t_done - t_ck) * 1e3,
        "verified": ok, "verify_error": why,
    }


def summary(args):
    runs, failures = [], []
    with open(args.runs_jsonl, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            doc = json.loads(line)
            (failures if "error" in doc else runs).append(doc)
    keys = ["workload_mb_s", "lag_bytes_at_end", "status_ms", "received_ms", "resolution_ms",
            "image_ms", "checkpoint_ms"]
    doc = {"available": bool(runs), "workload": args.workload, "target_ms": 100.0,
           "runs": runs, "failures": failures}
    if runs:
        doc["median"] = {k: statistics.median(r[k] for r in runs) for k in keys}
    else:
        doc["reason"] = failures[0]["error"] if failures else "no runs"
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    for fail in failures:
        print(f"run {fail.get('run', '?')} failed: {fail['error']}")
    if runs:
        m = doc["median"]
        print(f"async lag, median of {len(runs)} run(s) of {args.workload}:")
        print(f"  workload written at {m['workload_mb_s']:.0f} MB/s; "
              f"{m['lag_bytes_at_end'] / 2**20:.1f} MiB not yet received at its end")
        print(f"  (a) end -> mirrord received every record: {m['received_ms']:.0f} ms "
              f"(target < 100 ms; poll resolution {m['resolution_ms']:.0f} ms)")
        print(f"  (b) end -> mirrorfs checkpoint returned:  {m['image_ms']:.0f} ms "
              f"(the checkpoint call {m['checkpoint_ms']:.0f} ms)")
        bad = [r for r in runs if not r["verified"]]
        print("  image identical to BACKING after every run" if not bad else
              f"  image DIFFERS from BACKING in {len(bad)} run(s): {bad[0]['verify_error']}")
    return 0 if runs else 1


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    for name in ("--mnt", "--mirrorfs", "--mirrord", "--state-dir", "--source", "--backing"):
        r.add_argument(name, required=True)
    r.add_argument("--run", type=int, required=True)
    r.add_argument("--files", type=int, default=2000)
    r.add_argument("--file-kib", type=int, default=64)
    r.add_argument("--big-mib", type=int, default=256)
    e = sub.add_parser("error")
    e.add_argument("run", type=int)
    e.add_argument("message")
    s = sub.add_parser("summary")
    s.add_argument("runs_jsonl")
    s.add_argument("--workload", default="2000 files of 64 KiB + 1 file of 256 MiB")
    s.add_argument("--json")
    args = parser.parse_args(argv[1:])
    if args.cmd == "summary":
        return summary(args)
    if args.cmd == "error":
        print(f"  run {args.run}: failed: {args.message}", file=sys.stderr)
        print(json.dumps({"run": args.run, "error": args.message}))
        return 0
    try:
        d = measure(args)
    except (OSError, RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        print(f"  run {args.run}: failed: {e}", file=sys.stderr)
        print(json.dumps({"run": args.run, "error": str(e)}))
        return 1
    image = "equal" if d["verified"] else "DIFFERS: " + d["verify_error"]
    print(f"  run {d['run']}: {d['workload_mb_s']:.0f} MB/s, "
          f"{d['lag_bytes_at_end'] / 2**20:.1f} MiB behind at the end; received all after "
          f"{d['received_ms']:.0f} ms, checkpoint returned after {d['image_ms']:.0f} ms; "
          f"image {image}", file=sys.stderr)
    print(json.dumps(d))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
