"""What a benchmark hands back, and the verdict ``python -m bench`` draws from it.

The API a bench module follows:

- ``main(argv: list[str] | None = None)`` runs the bench. It prints what it likes along the way and returns
  a :class:`Report`; the runner calls it with ``argv=[]`` (a ``main()`` without parameters is called bare).
- Each measured figure with a target goes in with ``report.check(measure, value, at_most=…)`` (or
  ``at_least=…``), which returns whether it is met; a figure printed for context only goes in with
  ``report.note(measure, value)``. ``unit`` is how the value reads ("×" for a ratio, "ms", "MiB").
- A ``main()`` that returns ``None`` (a bench not yet written against this API) or an ``int`` exit code is
  still accepted: its row in the summary says so, and only a non-zero exit code or an exception counts
  as a miss.
- Run alone, a bench module ends with ``raise SystemExit(exit_code(main()))``: it prints its own summary
  and exits 1 when a target is missed.

``python -m bench`` runs each bench in a child process of its own (``python -m bench._report NAME OUT``),
so that no bench inherits another's Django settings, embedded Redis or memory peak, and reads its figures
back from the JSON file ``OUT``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One measured value: ``target`` reads like "≤ 1.2" (empty for a figure shown for context)."""

    bench: str
    measure: str
    value: float | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None  # None: no target, nothing to pass or miss

    def shown_value(self) -> str:
        if self.value is None:
            return "—"
        if self.unit == "×":
            return f"{self.value:.2f}×"
        if self.value.is_integer() and self.unit not in ("×", "s"):
            return f"{self.value:.0f} {self.unit}".rstrip()
        magnitude = abs(self.value)
        text = (
            f"{self.value:.0f}" if magnitude >= 100 else f"{self.value:.1f}" if magnitude >= 10 else f"{self.value:.2f}"
        )
        return f"{text} {self.unit}".rstrip()


@dataclass
class Report:
    """The figures one bench measured, in the order it measured them."""

    bench: str
    figures: list[Figure] = field(default_factory=list)

    def check(
        self, measure: str, value: float, *, at_most: float | None = None, at_least: float | None = None, unit: str = ""
    ) -> bool:
        """Record ``value`` against its target (exactly one of ``at_most`` / ``at_least``); returns whether met."""
        if (at_most is None) == (at_least is None):
            raise ValueError("give exactly one of at_most and at_least")
        limit = at_most if at_most is not None else at_least
        shown = f"{limit:g}{'×' if unit == '×' else ' ' + unit if unit else ''}"
        if at_most is not None:
            ok, target = math.isfinite(value) and value <= at_most, f"≤ {shown}"
        else:
            ok, target = math.isfinite(value) and value >= at_least, f"≥ {shown}"
        self.figures.append(Figure(self.bench, measure, float(value), unit, target, bool(ok)))
        return bool(ok)

    def note(self, measure: str, value: float, *, unit: str = "") -> None:
        """A figure shown for context, with no target."""
        self.figures.append(Figure(self.bench, measure, float(value), unit))

    def fail(self, measure: str, reason: str) -> None:
        """A figure that could not be measured (the bench crashed, or gave nothing)."""
        self.figures.append(Figure(self.bench, measure, None, target=reason, ok=False))

    @property
    def ok(self) -> bool:
        return all(f.ok is not False for f in self.figures)


def report_from(bench: str, result: Any) -> Report:
    """What a bench's ``main()`` returned, as a Report (see the module docstring for what is accepted)."""
    if isinstance(result, Report):
        return result
    report = Report(bench)
    if result is None:
        report.figures.append(Figure(bench, "(reports no figures yet)", None, target="its own output", ok=None))
    elif isinstance(result, int) and not isinstance(result, bool):
        report.figures.append(
            Figure(bench, "exit code (no figures reported)", float(result), target="= 0", ok=result == 0)
        )
    else:
        report.fail("result", f"main() returned {type(result).__name__}")
    return report


def call_main(module: Any) -> Any:
    parameters = inspect.signature(module.main).parameters
    return module.main([]) if parameters else module.main()


def run_bench(name: str) -> Report:
    """Import ``bench.<name>`` and run it in this process; an exception becomes a failed figure."""
    try:
        return report_from(name, call_main(importlib.import_module(f"bench.{name}")))
    except Exception as exc:
        traceback.print_exc()
        report = Report(name)
        report.fail("(crashed)", f"{type(exc).__name__}: {exc}"[:120])
        return report


def table(figures: list[Figure]) -> str:
    """The summary: one row per figure."""
    header = ("bench", "measure", "value", "target", "ok")
    rows = [header]
    for f in figures:
        verdict = "—" if f.ok is None else "yes" if f.ok else "MISSED"
        rows.append((f.bench, f.measure, f.shown_value(), f.target, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def exit_code(result: Any, bench: str | None = None) -> int:
    """For a bench run alone: print its summary and return 1 when a target is missed."""
    if bench is None:
        caller = inspect.stack()[1].frame.f_globals.get("__spec__")
        bench = caller.name.rsplit(".", 1)[-1] if caller is not None else "bench"
    report = report_from(bench, result)
    print()
    print(table(report.figures))
    return 0 if report.ok else 1


def save(report: Report, path: str | Path) -> None:
    Path(path).write_text(json.dumps([asdict(f) for f in report.figures]))


def load(bench: str, path: str | Path) -> Report:
    return Report(bench, [Figure(**row) for row in json.loads(Path(path).read_text())])


if __name__ == "__main__":  # the child the runner starts: python -m bench._report NAME OUT
    # Through the package, not this __main__ copy: a bench's Report must be bench._report.Report.
    from bench import _report

    _report.save(_report.run_bench(sys.argv[1]), sys.argv[2])
