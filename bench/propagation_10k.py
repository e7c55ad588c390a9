"""Benchmark (opt-in): bench/propagation.py with 10,000 held long polls per side, 2 uvicorn workers each.
Every client must get the new revision (no error, no dropped connection); p99 ≤ 1.25× the bare anchor's;
≤ 20 KiB of RSS per held poll.

    python -m bench.propagation_10k [--repeat 5]    # or: make bench BENCH=propagation_10k
"""

from __future__ import annotations

import argparse
import sys

from bench import propagation
from bench._report import Report, exit_code


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds per side")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    return propagation.main(
        ["--clients", "10000", "--repeat", str(args.repeat), "--workers", str(args.workers)]
        + ["--bench-name", "propagation_10k"]
    )


if __name__ == "__main__":
    sys.exit(exit_code(main(), "propagation_10k"))
