"""The project's own models: the API tokens of people (``Authorization: Token mlu_…``).

Client tokens (``mlc_…``, read-only, scoped to scenes) are the deploy app's; these are a user's, and act with
that user's permissions on every API route.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A user's API token. Only the sha256 of the token is stored; the token itself is shown once, when it is
    created (``manage.py api_token``, the admin, ``mlab_demo``). Revoking a token deletes its row."""

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of the token (the token is never stored).")
    hint = models.CharField(max_length=16, blank=True, help_text="The token's first characters, to recognise it.")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the script or machine using it.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["user", "name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"
