"""The models serving live that a run can be compared with, asked of the app that serves them.

Training knows no scenes: the deploy app, above it, registers a provider when it is ready
(``live_models_provide``), and the run page asks ``live_models_for`` for the versions live in the scenes the
user owns that come from the same template. Without a provider (training alone) the answer is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LiveModel:
    """A model version serving in a scene: its share of the scene's units (0 to 1) and its metrics."""

    scene_id: int
    scene: str
    version: int
    share: float
    run_id: int
    metrics: Mapping[str, Any] = field(default_factory=dict)


Provider = Callable[..., list[LiveModel]]  # (*, template_id: int, user) -> live versions of that template
_providers: list[Provider] = []


def live_models_provide(provider: Provider) -> None:
    """Register ``provider(template_id=…, user=…)`` (once; the deploy app does it in ``ready()``)."""
    if provider not in _providers:
        _providers.append(provider)


def live_models_for(*, template_id: int, user) -> list[LiveModel]:
    """The versions live in ``user``'s scenes that were trained from the template ``template_id``."""
    return [model for provider in _providers for model in provider(template_id=template_id, user=user)]
