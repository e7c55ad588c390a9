"""Algorithm templates: chains of typed nodes with the template author's presets."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from .nodes import ParamError, Task, registry

NODE_KEY_VALIDATOR = RegexValidator(
    r"^[a-z](?:[a-z0-9]|_(?!_))*$",
    "Node keys are lowercase letters, digits and single underscores, starting with a letter.",
)


def node_type_choices() -> list[tuple[str, str]]:
    return registry.choices()


class AlgorithmTemplate(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    task_type = models.CharField(max_length=16, choices=[(t.value, t.value.capitalize()) for t in Task])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="algorithm_templates",
        help_text="Empty for built-in templates.",
    )
    published = models.BooleanField(default=False, help_text="Published templates are visible to every user.")
    builtin = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TemplateNode(models.Model):
    template = models.ForeignKey(AlgorithmTemplate, on_delete=models.CASCADE, related_name="nodes")
    key = models.CharField(
        max_length=40,
        validators=[NODE_KEY_VALIDATOR],
        help_text="The node's name in run parameters, e.g. 'sample' in sample.label.",
    )
    node_type = models.CharField(max_length=64, choices=node_type_choices)
    position = models.PositiveSmallIntegerField()
    overrides = models.JSONField(
        default=dict, blank=True, help_text="Parameter values preset by the template author: {name: value}."
    )
    locked = models.JSONField(
        default=list, blank=True, help_text="Names of parameters business developers cannot change."
    )

    class Meta:
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "key"], name="template_node_key_unique"),
            models.UniqueConstraint(fields=["template", "position"], name="template_node_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.node_type})"

    @property
    def type(self):
        return registry.get(self.node_type)

    def effective_value(self, name: str) -> Any:
        """The value a business developer starts from: the author's preset, else the declared default."""
        return self.overrides.get(name, self.type.param_map[name].default)

    def clean(self) -> None:
        if self.node_type not in registry:
            raise ValidationError({"node_type": f"Unknown node type {self.node_type!r}."})
        node_type = self.type
        errors: list[str] = []
        if not isinstance(self.overrides, dict):
            raise ValidationError({"overrides": "Expected an object {parameter: value}."})
        for name, value in self.overrides.items():
            param = node_type.param_map.get(name)
            if param is None:
                errors.append(f"{name}: unknown parameter of {node_type.key}.")
            elif param.secret:
                errors.append(f"{name}: secret parameters cannot be preset in a template.")
            elif value is not None:
                try:
                    param.validate(value)
                except ParamError as exc:
                    errors.append(f"{name}: {exc}")
        if errors:
            raise ValidationError({"overrides": errors})
        if not isinstance(self.locked, list) or not all(isinstance(n, str) for n in self.locked):
            raise ValidationError({"locked": "Expected a list of parameter names."})
        for name in self.locked:
            if name not in node_type.param_map:
                errors.append(f"{name}: unknown parameter of {node_type.key}.")
            elif node_type.param_map[name].secret:
                errors.append(f"{name}: secret parameters cannot be locked.")
            elif self.effective_value(name) is None:
                errors.append(f"{name}: a locked parameter needs a preset value.")
        if errors:
            raise ValidationError({"locked": errors})
