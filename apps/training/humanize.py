"""Sizes and durations as people read them, one way on every page (the run page, the comparison of runs, a
scene's versions, the data source page). Numbers and metrics: ``apps.templates.metrics.human_number``."""

from __future__ import annotations

import datetime


def human_size(size: int | float | None) -> str:
    """Bytes in binary units: 512 B, 3.4 KiB, 12.0 MiB, 1.2 GiB."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable: GiB ends the loop")


def human_duration(seconds: float | datetime.timedelta | None) -> str:
    """12s, 3m 05s, 2h 01m."""
    if seconds is None:
        return "—"
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
