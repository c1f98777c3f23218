#!/usr/bin/env python3
"""Helper of bench/fs_bench.sh: pulls figures out of fio/bench_createloop JSON and prints the tables.

  fs_bench_report.py figure fio FILE read|write bw|iops   -> MiB/s or IOPS of one fio run
  fs_bench_report.py figure createloop FILE KEY           -> create_per_s or unlink_per_s
  fs_bench_report.py lag-unavailable REASON               -> a lag JSON saying why there is none
  fs_bench_report.py table --results R --targets T --meta M [--lag L] [--json OUT]

R is fs_bench.sh's TSV of runs (target, workload, run, value; value "NA" plus a reason when
the run failed), T its TSV of the selected targets (name, "ok" or "failed", reason), M a TSV
of key/value lines (environment and configuration), L the JSON that bench/async_lag.sh
writes. The tables go to stdout as Markdown; OUT, if given, gets every run, median, ratio,
target check and the lag.
"""

import argparse
import json
import statistics
import sys

BASELINE = "passthrough_ll"
PEER = "glusterfs"
NOISY_SPREAD = 1.5  # runs of one figure further apart than this get named under the table

# Every target fs_bench.sh knows, in table order, with its row label.
TARGETS = [
    ("plain", "plain directory"),
    (BASELINE, "passthrough_ll (baseline)"),
    ("mirrorfs", "mirrorfs local-only"),
    ("mirrorfs-async", "mirrorfs mode=async"),
    ("mirrorfs-sync", "mirrorfs mode=sync"),
    ("mirrorfs-durable", "mirrorfs mode=durable"),
    (PEER, "GlusterFS replica 2"),
]

# id, column label, unit. The ids are the ones fs_bench.sh records.
WORKLOADS = [
    ("seq-write", "seq write 1 MiB+fsync", "MiB/s"),
    ("seq-read", "seq read 1 MiB", "MiB/s"),
    ("randwrite-4j", "rand write 4 KiB, 4 jobs", "IOPS"),
    ("randwrite-fsync", "rand write 4 KiB+fsync", "IOPS"),
    ("create", "create+write 4 KiB", "files/s"),
    ("unlink", "unlink", "files/s"),
]

# issue, target, workload, compared with, minimum ratio.
CHECKS = [
    ("3", "mirrorfs", "seq-write", BASELINE, 0.9),
    ("3", "mirrorfs", "seq-read", BASELINE, 0.9),
    ("3", "mirrorfs", "randwrite-4j", BASELINE, 0.8),
    ("3", "mirrorfs", "randwrite-fsync", BASELINE, 0.8),
    ("3", "mirrorfs", "create", BASELINE, 0.8),
    ("5", "mirrorfs-sync", "seq-write", BASELINE, 0.7),
    ("5", "mirrorfs-sync", "randwrite-4j", BASELINE, 0.5),
    ("5", "mirrorfs-sync", "create", BASELINE, 0.5),
    ("5", "mirrorfs-async", "seq-write", BASELINE, 0.9),
    ("5", "mirrorfs-async", "randwrite-4j", BASELINE, 0.9),
    ("5", "mirrorfs-async", "create", BASELINE, 0.9),
    ("5", "mirrorfs-sync", "randwrite-4j", PEER, 10.0),
]
LAG_TARGET_MS = 100.0  # issue 5: async lag under 100 ms after the workload ends


def load_json(path):
    # fio may print warnings before its JSON even with --output: start at the first brace.
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    start = text.find("{")
    if start < 0:
        raise ValueError(f"no JSON in {path}")
    return json.loads(text[start:])


def figure(kind, path, *args):
    data = load_json(path)
    if kind == "fio":
        direction, metric = args
        if data.get("jobs") is None or not data["jobs"]:
            raise ValueError("fio JSON has no jobs")
        job = data["jobs"][0]  # one job, or the group_reporting aggregate
        if job.get("error", 0):
            raise ValueError(f"fio job error {job['error']}")
        side = job[direction]
        if side.get("io_bytes", 0) == 0:
            raise ValueError(f"fio did no {direction} I/O")
        return side["bw_bytes"] / 2**20 if metric == "bw" else side["iops"]
    if kind == "createloop":
        (key,) = args
        return float(data[key])
    raise ValueError(f"unknown figure kind {kind}")


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                rows.append(line.split("\t"))
    return rows


def fmt_value(value, unit):
    if value is None:
        return "n/a"
    return f"{value:.1f}" if unit == "MiB/s" else f"{value:.0f}"


def fmt_ratio(ratio):
    if ratio is None:
        return "n/a"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def markdown(header, lines):
    widths = [max(len(header[i]), *(len(c[i]) for c in lines)) for i in range(len(header))]

    def row(cells):
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"

    out = [row(header), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [row(c) for c in lines]
    return "\n".join(out)


def summarize(results, names):
    """Returns one dict per workload: runs, failures, medians and ratios per target."""
    summary = []
    for wid, label, unit in WORKLOADS:
        runs = {t: [] for t in names}
        failures = {t: [] for t in names}
        for row in results:
            target, workload, _run, value = row[:4]
            if workload != wid or target not in runs:
                continue
            if value == "NA":
                failures[target].append(row[4] if len(row) > 4 else "failed")
            else:
                runs[target].append(float(value))
        medians = {t: (statistics.median(v) if v else None) for t, v in runs.items()}
        base = medians.get(BASELINE)
        ratios = {t: (m / base if m is not None and base else None) for t, m in medians.items()}
        summary.append({"id": wid, "label": label, "unit": unit, "runs": runs,
                        "failures": failures, "median": medians,
                        "ratio_to_passthrough_ll": ratios})
    return summary


def evaluate_checks(summary, names, lag):
    by_id = {w["id"]: w for w in summary}
    checks = []
    for issue, target, wid, versus, minimum in CHECKS:
        if target not in names:
            continue
        w = by_id[wid]
        mine, theirs = w["median"].get(target), w["median"].get(versus)
        ratio = mine / theirs if mine is not None and theirs else None
        if ratio is not None:
            result = "PASS" if ratio >= minimum else "MISS"
        elif versus not in names:
            result = f"n/a ({versus} not run" + (": --peers)" if versus == PEER else ")")
        else:
            result = "n/a"
        checks.append({"issue": issue, "target": target, "workload": wid, "versus": versus,
                       "minimum_ratio": minimum, "ratio": ratio, "result": result})
    if lag is not None:
        received = lag.get("median", {}).get("received_ms") if lag.get("available") else None
        if received is None:
            result = "n/a"
        else:
            result = "PASS" if received < LAG_TARGET_MS else "MISS"
        checks.append({"issue": "5", "target": "mirrorfs-async", "workload": "lag-received",
                       "versus": None, "maximum_ms": LAG_TARGET_MS, "ms": received,
                       "result": result})
    return checks


def print_values(summary, names, state):
    header = ["target"] + [f"{label} ({unit})" for _wid, label, unit in WORKLOADS]
    lines = []
    labels = dict(TARGETS)
    for name in names:
        cells = [labels.get(name, name)]
        available = state.get(name, ("failed",))[0] == "ok"
        for w in summary:
            value = w["median"].get(name)
            if value is None:
                cells.append("n/a" if available else "not available")
            elif name == BASELINE:
                cells.append(fmt_value(value, w["unit"]))
            else:
                ratio = w["ratio_to_passthrough_ll"].get(name)
                cells.append(f"{fmt_value(value, w['unit'])} ({fmt_ratio(ratio)})")
        lines.append(cells)
    print(markdown(header, lines))


def print_checks(checks):
    labels = dict(TARGETS)
    wlabels = {wid: label for wid, label, _unit in WORKLOADS}
    lines = []
    for c in checks:
        if c["workload"] == "lag-received":
            measured = "n/a" if c["ms"] is None else f"{c['ms']:.0f} ms"
            lines.append([c["issue"], labels[c["target"]],
                          "async lag (a): end -> mirrord received all",
                          f"< {c['maximum_ms']:.0f} ms", measured, c["result"]])
            continue
        versus = "pt" if c["versus"] == BASELINE else c["versus"]
        lines.append([c["issue"], labels[c["target"]], wlabels[c["workload"]],
                      f">= {c['minimum_ratio']:g}x {versus}", fmt_ratio(c["ratio"]), c["result"]])
    if lines:
        print(markdown(["issue", "target", "figure", "required", "measured", "result"], lines))


def print_lag(lag):
    if not lag.get("available"):
        print(f"Async lag: not available ({lag.get('reason', 'unknown')})")
        return
    med = lag["median"]
    runs = lag["runs"]

    def series(key, fmt):
        return ", ".join(fmt(r[key]) for r in runs if r.get(key) is not None)

    print(f"Async lag: mirrorfs mode=async, {lag['workload']}; medians of {len(runs)} run(s).")
    print()
    lines = [
        ["workload write rate", f"{med['workload_mb_s']:.0f} MB/s",
         series("workload_mb_s", lambda v: f"{v:.0f}")],
        ["journal bytes not yet received at the end", f"{med['lag_bytes_at_end'] / 2**20:.1f} MiB",
         series("lag_bytes_at_end", lambda v: f"{v / 2**20:.1f}")],
        ["(a) end -> mirrord received every record", f"{med['received_ms']:.0f} ms",
         series("received_ms", lambda v: f"{v:.0f}")],
        ["(b) end -> `mirrorfs checkpoint` returned (image matches)",
         f"{med['image_ms']:.0f} ms", series("image_ms", lambda v: f"{v:.0f}")],
        ["    of which the checkpoint call", f"{med['checkpoint_ms']:.0f} ms",
         series("checkpoint_ms", lambda v: f"{v:.0f}")],
    ]
    print(markdown(["figure", "median", "runs"], lines))
    print()
    at_status = sum(1 for r in runs if r.get("received_at_status"))
    print(f"(a) is an upper bound, polled with `mirrord status --json`: resolution about "
          f"{med['resolution_ms']:.0f} ms (one poll). In {at_status} of {len(runs)} run(s) the "
          f"`mirrorfs status` call right at the end (median {med['status_ms']:.0f} ms) already "
          f"showed every record acknowledged by mirrord. The image was "
          + ("identical to BACKING after every run." if all(r.get("verified") for r in runs)
             else "NOT identical to BACKING after some run: "
             + "; ".join(r.get("verify_error", "") for r in runs if not r.get("verified"))))


def print_notes(summary, names, state):
    for name in names:
        st, reason = state.get(name, ("failed", "not run"))
        if st != "ok":
            print(f"{name}: not available ({reason})")
    noisy = []
    for w in summary:
        for target in names:
            v = w["runs"][target]
            if len(v) > 1 and min(v) > 0 and max(v) / min(v) > NOISY_SPREAD:
                noisy.append(f"{w['id']} {target} {max(v) / min(v):.1f}x")
    if noisy:
        print(f"Noisy (max/min of the runs above {NOISY_SPREAD}x; see --json for every run): "
              + ", ".join(noisy))
    for w in summary:
        for target, reasons in w["failures"].items():
            if reasons:
                print(f"{target}, {w['id']}: {len(reasons)} failed run(s): {reasons[0]}")


def table(args):
    results = read_tsv(args.results)
    targets = [(r + ["", ""])[:3] for r in read_tsv(args.targets)]
    meta = {r[0]: (r[1] if len(r) > 1 else "") for r in read_tsv(args.meta)}
    known = [n for n, _label in TARGETS]
    names = [n for n in known if any(t[0] == n for t in targets)]
    state = {name: (st, reason) for name, st, reason in targets}
    lag = load_json(args.lag) if args.lag else None
    summary = summarize(results, names)
    checks = evaluate_checks(summary, names, lag)

    print(f"Medians of {meta.get('runs', '?')} runs; in brackets the ratio to passthrough_ll (pt).")
    print(f"{meta.get('setup', '')}")
    print()
    print_values(summary, names, state)
    print()
    print_notes(summary, names, state)
    if lag is not None:
        print()
        print_lag(lag)
    if checks:
        print()
        print("Targets:")
        print()
        print_checks(checks)
    if args.json:
        doc = {"meta": meta,
               "targets": {n: {"state": s, "reason": r} for n, s, r in targets},
               "workloads": summary, "checks": checks, "lag": lag}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0  # a MISS is a finding to report, not a failure of the benchmark


def main(argv):
    try:
        if len(argv) >= 4 and argv[1] == "figure":
            print(f"{figure(argv[2], argv[3], *argv[4:]):.3f}")
            return 0
        if len(argv) == 3 and argv[1] == "lag-unavailable":
            print(json.dumps({"available": False, "reason": argv[2]}))
            return 0
        if len(argv) >= 2 and argv[1] == "table":
            parser = argparse.ArgumentParser(prog="fs_bench_report.py table")
            parser.add_argument("--results", required=True)
            parser.add_argument("--targets", required=True)
            parser.add_argument("--meta", required=True)
            parser.add_argument("--lag")
            parser.add_argument("--json")
            return table(parser.parse_args(argv[2:]))
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        print(f"fs_bench_report: {e}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
