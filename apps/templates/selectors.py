"""Reads of algorithm templates."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from .models import AlgorithmTemplate, TemplateNode


def template_list(*, user) -> QuerySet[AlgorithmTemplate]:
    """Templates ``user`` may use: published ones and their own (staff with full rights see all)."""
    qs = AlgorithmTemplate.objects.select_related("owner").prefetch_related(
        Prefetch("nodes", queryset=TemplateNode.objects.order_by("position"))
    )
    if user.is_superuser:
        return qs
    return qs.filter(Q(published=True) | Q(owner=user))


def template_get(*, user, slug: str) -> AlgorithmTemplate:
    """Raises AlgorithmTemplate.DoesNotExist when ``user`` may not see it."""
    return template_list(user=user).get(slug=slug)
