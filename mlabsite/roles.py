"""The roles of Mlab: groups and the model permissions each grants. Ownership rules narrow them per object
(a business developer changes only the templates and scenes they own).

A data migration creates the groups on every install (``mlabsite/migrations``); ``roles_sync`` brings them up
to date with this file, and is what that migration, the demo and the tests call.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group

BUSINESS_DEVELOPERS = "Business developers"

# role → app label → permission codenames
ROLES: dict[str, dict[str, list[str]]] = {
    BUSINESS_DEVELOPERS: {
        "algo_templates": [
            "view_algorithmtemplate",
            "add_algorithmtemplate",
            "change_algorithmtemplate",
            "delete_algorithmtemplate",
            "view_templatenode",
            "add_templatenode",
            "change_templatenode",
            "delete_templatenode",
        ],
        "training": ["view_datasource", "view_trainingrun", "add_trainingrun"],
        "deploy": [
            "view_scene",
            "add_scene",
            "change_scene",
            "view_modelversion",
            "add_modelversion",
            "view_deployment",
            "add_deployment",
            "view_clienttoken",
            "add_clienttoken",
            "delete_clienttoken",
        ],
        # their own API tokens (the admin shows a non-superuser only theirs)
        "mlabsite": ["view_apitoken", "add_apitoken", "delete_apitoken"],
    },
}


def roles_sync(apps=global_apps, using: str = "default") -> None:
    """Create each role's group, or bring it up to date, with exactly the permissions ROLES names.

    ``apps`` is a migration's historical registry or the live one. Model permissions are normally created
    after migrations finish; they are created here first if missing, so that a fresh install's migration can
    grant them. A permission of a model that a later migration adds is skipped by an earlier migration's call
    (that later migration calls this again); any other unknown permission is an error.
    """
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for app_labels in ROLES.values():
        for label in app_labels:
            if _app_has_models(apps, label):
                _permissions_ensure(apps.get_app_config(label), apps, using)
    for role, grants in ROLES.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        wanted = [
            permission_model.objects.using(using).get(content_type__app_label=label, codename=codename)
            for label, codenames in grants.items()
            for codename in codenames
            if _model_exists(apps, label, codename)
        ]
        group.permissions.set(wanted)


def _app_has_models(apps, label: str) -> bool:
    # A migration's registry knows an app only once its migrations have created a model.
    try:
        return bool(list(apps.get_app_config(label).get_models()))
    except LookupError:
        return False


def _model_exists(apps, label: str, codename: str) -> bool:
    # codenames are "<action>_<model name>"
    model_name = codename.split("_", 1)[1]
    if not _app_has_models(apps, label):
        return False
    return any(model._meta.model_name == model_name for model in apps.get_app_config(label).get_models())


def _permissions_ensure(app_config, apps, using: str) -> None:
    # create_permissions skips an app without a models module, which a migration's app stub never has.
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    try:
        create_permissions(app_config, verbosity=0, apps=apps, using=using)
    finally:
        app_config.models_module = models_module


def role_group(role: str):
    """The group of ``role``, up to date (created if a test database was flushed since migrating)."""
    roles_sync()
    return Group.objects.get(name=role)
