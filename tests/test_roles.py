"""The roles every install has: a fresh database's migrations create the business developers' group with
exactly the permissions mlabsite/roles.py names."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from mlabsite.roles import BUSINESS_DEVELOPERS, ROLES


def _granted(group: Group) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for label, codename in group.permissions.values_list("content_type__app_label", "codename"):
        granted.setdefault(label, set()).add(codename)
    return granted


@pytest.mark.django_db(transaction=True)
def test_migrating_creates_the_business_developers_group_with_its_permissions():
    Group.objects.filter(name=BUSINESS_DEVELOPERS).delete()
    executor = MigrationExecutor(connection)
    executor.migrate([("mlabsite", None)])
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    group = Group.objects.get(name=BUSINESS_DEVELOPERS)
    assert _granted(group) == {label: set(codenames) for label, codenames in ROLES[BUSINESS_DEVELOPERS].items()}
