"""Form fields every app's forms and admin pages use."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput

from .jsonlimits import MAX_DEPTH, too_deep


class JSONFormField(forms.JSONField):
    """Django's form JSONField with the nesting limit of ``mlabsite.jsonlimits``: deeper JSON is a form error,
    not a RecursionError (a 500)."""

    default_error_messages = {"too_deep": f"Nested deeper than {MAX_DEPTH} levels."}

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not self.disabled and too_deep(value, MAX_DEPTH):
            raise ValidationError(self.error_messages["too_deep"], code="too_deep")
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Redisplaying a refused value must not parse it either.
        if isinstance(data, str) and not self.disabled and too_deep(data, MAX_DEPTH):
            return InvalidJSONInput(data)
        return super().bound_data(data, initial)


# Every admin page with a model JSONField sets ``formfield_overrides = JSON_FORMFIELD_OVERRIDES``.
JSON_FORMFIELD_OVERRIDES: dict[type[models.Field], dict[str, Any]] = {models.JSONField: {"form_class": JSONFormField}}
