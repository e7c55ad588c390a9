"""Run the benchmarks and give a verdict.

    python -m bench                        # every bench but the opt-in ones
    python -m bench train_local dispatch   # some (opt-in ones included: python -m bench train_local_10m)

Each bench runs in a child process of its own (see bench/_report.py for the API a bench follows); the run
ends with a table of every figure (bench, measure, value, target, ok) and exits 1 when a target is missed.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._report import Report, load, table

ROOT = Path(__file__).resolve().parents[1]
# Modules here that are not benches: the site and settings the deployment benches share.
SUPPORT = {"deploy_site", "poll_settings", "poll_urls", "poll_clients", "anchor_app", "anchor_settings"}
# Benches that run only when named: they take minutes and gigabytes.
OPT_IN = {"train_local_10m", "propagation_10k"}


def available() -> list[str]:
    modules = pkgutil.iter_modules([str(Path(__file__).parent)])
    return sorted(m.name for m in modules if not m.name.startswith("_") and m.name not in SUPPORT)


def run_child(name: str) -> Report:
    with tempfile.TemporaryDirectory(prefix="mlab-bench-report-") as directory:
        out = Path(directory) / "report.json"
        done = subprocess.run([sys.executable, "-m", "bench._report", name, str(out)], cwd=ROOT)
        report = load(name, out) if out.exists() else Report(name)
    if done.returncode != 0:
        report.fail("(process)", f"exited with {done.returncode}")
    elif not report.figures:
        report.fail("(process)", "reported nothing")
    return report


def main(argv: list[str]) -> int:
    names = argv or [name for name in available() if name not in OPT_IN]
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"Unknown benchmark: {', '.join(unknown)}. Available: {', '.join(available())}.", file=sys.stderr)
        return 2
    started = time.monotonic()
    reports = []
    for name in names:
        print(f"== bench.{name}", flush=True)
        bench_started = time.monotonic()
        reports.append(run_child(name))
        print(f"(bench.{name}: {time.monotonic() - bench_started:.0f} s)\n", flush=True)
    missed = [r.bench for r in reports if not r.ok]
    print(table([figure for report in reports for figure in report.figures]))
    verdict = f"MISSED in {', '.join(missed)}" if missed else "every target met"
    print(f"\n{len(names)} bench(es) in {time.monotonic() - started:.0f} s: {verdict}.")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
