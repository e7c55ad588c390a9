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


def template_may_change(user, template: AlgorithmTemplate) -> bool:
    """Whether ``user`` may change ``template`` and its nodes: its owner, or a superuser; a built-in template
    only a superuser (its presets are every user's)."""
    return user.is_superuser or (not template.builtin and template.owner_id == user.pk)


def template_changeable_list(*, user) -> QuerySet[AlgorithmTemplate]:
    """Templates whose nodes ``user`` may change (see ``template_may_change``)."""
    qs = AlgorithmTemplate.objects.select_related("owner")
    return qs if user.is_superuser else qs.filter(owner=user, builtin=False)


def template_get(*, user, slug: str) -> AlgorithmTemplate:
    """Raises AlgorithmTemplate.DoesNotExist when ``user`` may not see it."""
    return template_list(user=user).get(slug=slug)
