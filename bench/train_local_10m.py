"""binary-gbdt on 10,000,000 demo impressions against the same run on 1,000,000: time and peak RSS.

    python -m bench.train_local_10m [--rows 10000000] [--base-rows 1000000]

Opt-in (``make bench BENCH=train_local_10m``): it builds a 10M-row warehouse under var/bench/ once (about
10 s and 3 GiB) and the run takes minutes. Each run is a real local-engine run in a fresh child process, as
in bench.train_local (the same child code). Targets (issue 13): the 10M run takes at most 12 times the 1M
run, and its peak RSS (imports included) is at most 3 times the float32 matrix the model is fed (rows ×
the model's input columns: the numbers and the one-hot columns × 4 bytes).
"""

from __future__ import annotations

import argparse

from bench._report import Report, exit_code
from bench.train_local import _child, warehouse

TEMPLATE = "binary-gbdt"
TIME_TARGET, RSS_TARGET = 12.0, 3.0


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--base-rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    report = Report("train_local_10m")
    runs = {}
    for rows in (args.base_rows, args.rows):
        path = warehouse(rows)
        runs[rows] = run = _child(["--side", "mlab", "--warehouse", str(path), "--template", TEMPLATE])
        matrix_mib = (run["rows"]["train"] + run["rows"]["test"]) * run["matrix_columns"] * 4 / 2**20
        run["matrix_mib"] = matrix_mib
        print(
            f"{rows:>11,} rows: {run['seconds']:7.2f} s   peak RSS {run['rss_mib']:6.0f} MiB "
            f"(before the run {run['rss_before_mib']:.0f})   float32 matrix {matrix_mib:6.0f} MiB "
            f"({run['matrix_columns']} columns)   AUC {run['auc']:.4f}   threads {run['threads']}",
            flush=True,
        )
        print(f"             stages {run['timings']}", flush=True)
    base, big = runs[args.base_rows], runs[args.rows]
    scale = args.rows / args.base_rows
    time_ratio = big["seconds"] / base["seconds"]
    rss_ratio = big["rss_mib"] / big["matrix_mib"]
    report.check(f"{args.rows:,} rows time / {args.base_rows:,} rows", time_ratio, at_most=TIME_TARGET, unit="×")
    report.check(f"{args.rows:,} rows peak RSS / float32 matrix", rss_ratio, at_most=RSS_TARGET, unit="×")
    report.note(f"{args.rows:,} rows run", big["seconds"], unit="s")
    report.note(f"{args.base_rows:,} rows run", base["seconds"], unit="s")
    report.note(f"{args.rows:,} rows peak RSS", big["rss_mib"], unit="MiB")
    report.note(f"{args.rows:,} rows float32 matrix", big["matrix_mib"], unit="MiB")
    print(f"time ratio {time_ratio:.2f} for {scale:g}× the rows (target ≤ {TIME_TARGET:g}); "
          f"peak RSS {rss_ratio:.2f}× the matrix (target ≤ {RSS_TARGET:g})")  # fmt: skip
    return report


if __name__ == "__main__":
    raise SystemExit(exit_code(main(), "train_local_10m"))
