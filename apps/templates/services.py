"""Writes to algorithm templates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .builtins import BUILTIN_TEMPLATES
from .models import AlgorithmTemplate, TemplateNode
from .validation import chain_errors, template_chain_errors


@transaction.atomic
def template_create(
    *,
    slug: str,
    name: str,
    task_type: str,
    nodes: Iterable[Mapping[str, Any]],
    owner=None,
    description: str = "",
    published: bool = False,
    builtin: bool = False,
) -> AlgorithmTemplate:
    """Create a template and its chain of nodes. ``nodes`` are dicts {key, type, overrides?, locked?}
    in chain order. Raises ValidationError when the chain is not well-formed."""
    template = AlgorithmTemplate(
        slug=slug,
        name=name,
        description=description,
        task_type=task_type,
        owner=owner,
        published=published,
        builtin=builtin,
    )
    template.full_clean()
    template.save()
    _template_nodes_replace(template, nodes)
    return template


def _template_nodes_replace(template: AlgorithmTemplate, nodes: Iterable[Mapping[str, Any]]) -> None:
    nodes = list(nodes)
    errors = chain_errors(template.task_type, [n["type"] for n in nodes])
    if errors:
        raise ValidationError({"nodes": errors})
    template.nodes.all().delete()
    for position, spec in enumerate(nodes):
        node = TemplateNode(
            template=template,
            key=spec["key"],
            node_type=spec["type"],
            position=position,
            overrides=dict(spec.get("overrides", {})),
            locked=list(spec.get("locked", [])),
        )
        try:
            node.full_clean()
        except ValidationError as exc:
            raise ValidationError({"nodes": [f"{spec['key']}: {m}" for m in exc.messages]}) from exc
        node.save()


@transaction.atomic
def template_node_save(*, node: TemplateNode) -> TemplateNode:
    """Add or change one node of a template. The template's chain must stay runnable (one sample node first,
    exactly one training and one evaluation node for the template's task, in order): ValidationError on
    ``nodes`` otherwise, and nothing is written."""
    template = AlgorithmTemplate.objects.select_for_update().get(pk=node.template_id)
    errors = template_chain_errors(template, changed=node)
    if errors:
        raise ValidationError({"nodes": errors})
    node.full_clean()
    node.save()
    return node


@transaction.atomic
def template_node_delete(*, node: TemplateNode) -> None:
    """Delete one node of a template, unless the chain left would not be runnable (ValidationError on
    ``nodes``)."""
    template = AlgorithmTemplate.objects.select_for_update().get(pk=node.template_id)
    errors = template_chain_errors(template, removed=node)
    if errors:
        raise ValidationError({"nodes": errors})
    node.delete()


@transaction.atomic
def builtin_templates_sync() -> list[AlgorithmTemplate]:
    """Create or refresh the built-in templates (idempotent)."""
    templates = []
    for definition in BUILTIN_TEMPLATES:
        template = AlgorithmTemplate.objects.select_for_update().filter(slug=definition["slug"]).first()
        if template is None:
            template = template_create(
                slug=definition["slug"],
                name=definition["name"],
                description=definition["description"],
                task_type=definition["task_type"],
                nodes=definition["nodes"],
                published=True,
                builtin=True,
            )
        else:
            template.name = definition["name"]
            template.description = definition["description"]
            template.task_type = definition["task_type"]
            template.published, template.builtin = True, True
            template.full_clean()
            template.save(update_fields=["name", "description", "task_type", "published", "builtin", "updated_at"])
            _template_nodes_replace(template, definition["nodes"])
        templates.append(template)
    return templates
