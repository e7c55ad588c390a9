"""What `mlab_demo` sets up, step by step. Each step is idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from rest_framework.authtoken.models import Token

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "mlab-demo"
BUSINESS_GROUP = "Business developers"
# What a business developer may do in the admin; ownership rules narrow it further per object.
BUSINESS_PERMISSIONS = {
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
}


@dataclass
class DemoUser:
    username: str
    password: str
    token: str


@transaction.atomic
def business_group_sync() -> Group:
    group, _ = Group.objects.get_or_create(name=BUSINESS_GROUP)
    wanted = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codenames in BUSINESS_PERMISSIONS.items()
        for codename in codenames
    ]
    group.permissions.set(wanted)
    return group


@transaction.atomic
def demo_user_sync() -> DemoUser:
    """The demo business developer: staff (admin login), in the business group, with an API token."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"is_staff": True})
    if created or not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
    user.is_staff = True
    user.is_active = True
    user.save()
    user.groups.add(business_group_sync())
    token, _ = Token.objects.get_or_create(user=user)
    return DemoUser(DEMO_USERNAME, DEMO_PASSWORD, token.key)
