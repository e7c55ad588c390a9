"""The one signal receiver the design asks for: a new Deployment is published once its transaction commits."""

from __future__ import annotations

from functools import partial

from django.db import transaction

from .services import publication_enqueue


def deployment_saved(sender, instance, created: bool, raw: bool = False, using: str = "default", **kwargs) -> None:
    if created and not raw:
        transaction.on_commit(partial(publication_enqueue, instance.scene_id), using=using)
