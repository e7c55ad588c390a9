"""Template filters for numbers, sizes and durations as people read them: ``{% load mlab_humanize %}``."""

from __future__ import annotations

from django import template

from apps.templates.metrics import human_number as _human_number
from apps.templates.metrics import human_percent as _human_percent

from ..humanize import human_duration as _human_duration
from ..humanize import human_size as _human_size

register = template.Library()


@register.filter
def human_size(value):
    return _human_size(value)


@register.filter
def human_number(value):
    return _human_number(value)


@register.filter
def human_percent(value):
    """A share 0.8 → 80.0%."""
    return _human_percent(value) if isinstance(value, int | float) else "—"


@register.filter
def human_duration(value):
    return _human_duration(value)
