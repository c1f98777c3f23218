#!/usr/bin/env python3
"""Helper of bench/fs_bench.sh: pulls figures out of fio/bench_createloop JSON and prints the table.

  fs_bench_report.py figure fio FILE read|write bw|iops   -> MiB/s or IOPS of one fio run
  fs_bench_report.py figure createloop FILE KEY           -> create_per_s or unlink_per_s
  fs_bench_report.py table RESULTS TARGETS META [JSON_OUT]

RESULTS is fs_bench.sh's TSV of runs (target, workload, run, value; value "NA" plus a
reason when the run failed), TARGETS its TSV of targets (name, "ok" or "failed", reason),
META a TSV of key/value lines (environment and configuration). The table goes to stdout as
Markdown; JSON_OUT, if given, gets every run, median and ratio.
"""

import json
import statistics
import sys

BASELINE = "passthrough_ll"
SUBJECT = "mirrorfs"
TARGET_ORDER = ["plain", BASELINE, SUBJECT]
NOISY_SPREAD = 1.5  # runs of one figure further apart than this get named under the table

# id, label, unit, minimum ratio of mirrorfs to passthrough_ll (None: no target).
# The ids are the ones fs_bench.sh records; the targets are issue 3's.
WORKLOADS = [
    ("seq-write", "sequential write 1 MiB + fsync", "MiB/s", 0.9),
    ("seq-read", "sequential read 1 MiB", "MiB/s", 0.9),
    ("randwrite-4j", "random write 4 KiB, 4 jobs", "IOPS", 0.8),
    ("randwrite-fsync", "random write 4 KiB, fsync each", "IOPS", 0.8),
    ("create", "create+write 4 KiB+close", "files/s", 0.8),
    ("unlink", "unlink", "files/s", None),
]


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


def fmt_ratio(value, base):
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"


def summarize(results, targets):
    """Returns one dict per workload: runs, failures, medians and ratios per target."""
    summary = []
    for wid, label, unit, minimum in WORKLOADS:
        runs = {t: [] for t in TARGET_ORDER}
        failures = {t: [] for t in TARGET_ORDER}
        for row in results:
            target, workload, _run, value = row[:4]
            if workload != wid or target not in runs:
                continue
            if value == "NA":
                failures[target].append(row[4] if len(row) > 4 else "failed")
            else:
                runs[target].append(float(value))
        medians = {t: (statistics.median(v) if v else None) for t, v in runs.items()}
        base = medians[BASELINE]
        ratios = {t: (m / base if m is not None and base else None) for t, m in medians.items()}
        subject_ratio = ratios[SUBJECT]
        if minimum is None:
            result = "-"
        elif subject_ratio is None:
            result = "n/a"
        else:
            result = "PASS" if subject_ratio >= minimum else "MISS"
        summary.append({"id": wid, "label": label, "unit": unit, "minimum_ratio": minimum,
                        "runs": runs, "failures": failures, "median": medians,
                        "ratio_to_passthrough_ll": ratios, "result": result})
    return summary


def print_table(summary, targets, meta):
    state = {name: (st, reason) for name, st, reason in targets}
    header = ["workload", "unit", "plain", "plain/pt", BASELINE, SUBJECT, "mirrorfs/pt",
              "target", "result"]
    lines = []
    for w in summary:
        m = w["median"]
        cells = [w["label"], w["unit"], fmt_value(m["plain"], w["unit"]),
                 fmt_ratio(m["plain"], m[BASELINE]), fmt_value(m[BASELINE], w["unit"])]
        if state.get(SUBJECT, ("failed",))[0] == "ok" or w["runs"][SUBJECT]:
            cells += [fmt_value(m[SUBJECT], w["unit"]), fmt_ratio(m[SUBJECT], m[BASELINE])]
        else:
            cells += ["not available", "n/a"]
        minimum = w["minimum_ratio"]
        cells += [f">= {minimum}x" if minimum is not None else "-", w["result"]]
        lines.append(cells)
    widths = [max(len(header[i]), *(len(c[i]) for c in lines)) for i in range(len(header))]

    def row(cells):
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"

    print(f"Medians of {meta.get('runs', '?')} runs; ratios are to passthrough_ll (pt).")
    print(f"{meta.get('setup', '')}")
    print()
    print(row(header))
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for cells in lines:
        print(row(cells))
    print()
    for name in TARGET_ORDER:
        st, reason = state.get(name, ("failed", "not run"))
        if st != "ok":
            print(f"{name}: not available ({reason})")
    noisy = []
    for w in summary:
        for target in TARGET_ORDER:
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


def table(results_path, targets_path, meta_path, json_out=None):
    results = read_tsv(results_path)
    targets = [(r + ["", ""])[:3] for r in read_tsv(targets_path)]
    meta = {r[0]: (r[1] if len(r) > 1 else "") for r in read_tsv(meta_path)}
    summary = summarize(results, targets)
    print_table(summary, targets, meta)
    if json_out:
        doc = {"meta": meta,
               "targets": {n: {"state": s, "reason": r} for n, s, r in targets},
               "workloads": summary}
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0  # a MISS is a finding to report, not a failure of the benchmark


def main(argv):
    try:
        if len(argv) >= 4 and argv[1] == "figure":
            print(f"{figure(argv[2], argv[3], *argv[4:]):.3f}")
            return 0
        if len(argv) in (5, 6) and argv[1] == "table":
            return table(*argv[2:])
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        print(f"fs_bench_report: {e}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
