"""What the PAI emulator is told to get wrong: error answers, late answers, jobs that fail."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class Faults:
    """What the emulator is told to get wrong, consumed as requests and jobs arrive. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._errors: list[dict[str, Any]] = []
            self._delays: list[dict[str, Any]] = []
            self._create_failed: deque[str] = deque()
            self._fail_running: deque[tuple[str, float]] = deque()
            self._denied: set[str] = set()

    def deny(self, *actions: str) -> None:
        """Answer these actions 403 Forbidden.RAM, as PAI does for an account lacking the permission."""
        with self._lock:
            self._denied.update(actions)

    def denied(self, action: str) -> bool:
        with self._lock:
            return action in self._denied

    def fail_next(self, count: int = 1, *, status: int = 500, action: str | None = None) -> None:
        """The next ``count`` signed API requests (of ``action`` only, when given) answer ``status``."""
        with self._lock:
            self._errors.append({"count": int(count), "status": int(status), "action": action})

    def delay_next(
        self, seconds: float, *, when: str = "after", action: str = "CreateTrainingJob", count: int = 1
    ) -> None:
        """Hold the next ``count`` requests of ``action`` for ``seconds`` (past the client's read timeout).

        ``when="after"``: the request is carried out (a create creates the job), then the answer is late.
        ``when="before"``: the request stalls and is then dropped without being carried out (504).
        """
        if when not in ("before", "after"):
            raise ValueError("when is 'before' or 'after'")
        with self._lock:
            self._delays.append({"count": int(count), "seconds": float(seconds), "when": when, "action": action})

    def create_failed(self, reason: str = "The emulator was told to fail this job's creation.") -> None:
        """The next job created goes Creating → CreateFailed with ``reason``."""
        with self._lock:
            self._create_failed.append(reason)

    def fail_running(
        self, reason: str = "The emulator was told to fail this job while it ran.", *, after_seconds: float = 0.0
    ) -> None:
        """The next job created reaches Running, then its trainer is killed after ``after_seconds``: Failed."""
        with self._lock:
            self._fail_running.append((reason, float(after_seconds)))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "fail_next": [dict(e) for e in self._errors],
                "delay_next": [dict(d) for d in self._delays],
                "create_failed": list(self._create_failed),
                "fail_running": [{"reason": r, "after_seconds": s} for r, s in self._fail_running],
                "deny": sorted(self._denied),
            }

    @staticmethod
    def _take(queue: list[dict[str, Any]], action: str) -> dict[str, Any] | None:
        for entry in queue:
            if entry["action"] in (None, action):
                entry["count"] -= 1
                if entry["count"] <= 0:
                    queue.remove(entry)
                return entry
        return None

    def take_error(self, action: str) -> int | None:
        with self._lock:
            entry = self._take(self._errors, action)
            return entry["status"] if entry else None

    def take_delay(self, action: str) -> tuple[float, str] | None:
        with self._lock:
            entry = self._take(self._delays, action)
            return (entry["seconds"], entry["when"]) if entry else None

    def take_job_faults(self) -> tuple[str | None, tuple[str, float] | None]:
        with self._lock:
            create_failed = self._create_failed.popleft() if self._create_failed else None
            fail_running = None if create_failed else (self._fail_running.popleft() if self._fail_running else None)
            return create_failed, fail_running


def apply_fault_spec(faults: Faults, body: bytes) -> None:
    """Apply ``POST /_emulator/faults``: {"fail_next": {"count", "status", "action"}, "delay_next": {"seconds",
    "when", "action", "count"}, "create_failed": {"reason"}, "fail_running": {"reason", "after_seconds"},
    "clear": true}. Each key may also hold a list of such objects."""
    try:
        spec = json.loads(body or b"{}")
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object")
        if spec.get("clear"):
            faults.clear()
        calls: dict[str, Callable[..., None]] = {
            "fail_next": faults.fail_next,
            "delay_next": faults.delay_next,
            "create_failed": faults.create_failed,
            "fail_running": faults.fail_running,
            "deny": lambda actions: faults.deny(*actions),
        }
        unknown = set(spec) - set(calls) - {"clear"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        for key, call in calls.items():
            entries = spec.get(key)
            if key == "deny" and entries is not None:
                call(entries if isinstance(entries, list) else [entries])
                continue
            for entry in entries if isinstance(entries, list) else [entries] if entries is not None else []:
                call(**entry)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Bad fault specification: {exc}.") from None
