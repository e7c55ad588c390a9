"""The whole loop on a fresh database: `mlab_demo` trains two versions and deploys 90/10, a client of the
live server observes about 90/10 over 10,000 units, a rollback is followed; a rerun retrains nothing."""

from __future__ import annotations

import io

import pytest
import requests
from django.core.management import call_command

from apps.demo.loop import demo_loop
from apps.demo.scene import DEMO_SCENE, demo_scene_sync
from apps.demo.setup import DEMO_USERNAME
from apps.deploy.models import ClientToken, ConfigEntry, Deployment, ModelVersion
from apps.training.models import DataSource, TrainingRun
from mlab_client.routing import Router
from tests.live import Uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _demo(*args: str) -> str:
    out = io.StringIO()
    call_command("mlab_demo", *args, stdout=out)
    return out.getvalue()


def test_two_versions_a_90_10_split_a_rollback_followed_and_an_idempotent_rerun(settings, tmp_path):
    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    first = _demo("--impressions", "30000")
    api_key = first.split("Authorization: Token ")[1].split("'")[0]
    versions = ModelVersion.objects.filter(scene__name=DEMO_SCENE).order_by("version")
    assert [(v.version, v.run.template.slug, v.run.status) for v in versions] == [
        (1, "binary-lr", "succeeded"),
        (2, "binary-gbdt", "succeeded"),
        (3, "demo-inverted-lr", "succeeded"),
    ]
    entry = ConfigEntry.objects.get(scene__name=DEMO_SCENE)
    assert entry.revision == 2 and sorted(map(tuple, entry.content["allocation"])) == [(0, 9000, 1), (9000, 10000, 2)]
    token = ClientToken.objects.get(name="demo-client")
    assert f"): {token.hint}" in first and 'ModelClient("http://127.0.0.1:8000", scene="seller-union-ctr"' in first

    owner = versions[0].scene.owners.get(username=DEMO_USERNAME)
    demo = demo_scene_sync(user=owner, datasource=DataSource.objects.get(name="demo"))
    server = Uvicorn(tmp_path / "uvicorn.log")
    lines: list[str] = []
    try:
        summary = demo_loop(demo, base_url=server.base, say=lines.append)
        # The server's own predict routes a unit like the client did.
        unit = "imp:probe-unit"
        answer = requests.post(
            f"{server.base}/api/v1/scenes/{DEMO_SCENE}/predict/",
            json={"unit_id": unit, "features": _first_row()},
            headers={"Authorization": f"Token {api_key}"},
            timeout=30,
        )
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    published = ConfigEntry.objects.get(scene__name=DEMO_SCENE)
    assert answer.json()["version"] == Router.from_config(published.content).version_for(unit)

    ab, rolled_back, again = summary.phases
    assert summary.units == 10_000 and sum(ab.counts.values()) == 10_000
    assert abs(ab.counts[2] / 10_000 - 0.10) <= 0.02, ab.counts
    assert rolled_back.counts == {1: 10_000}
    assert again.counts == ab.counts  # the same units went back to v2: allocation moves no more than it must
    assert rolled_back.followed_in is not None and again.followed_in is not None
    assert Deployment.objects.get(scene__name=DEMO_SCENE, revision=rolled_back.revision).rollback_of == 1
    assert again.revision == 4
    assert any("v2 " in line and "A/B 90/10" in line for line in lines)

    # The A/B results of revision 2: every unit counted once, different online AUCs, a split that holds.
    results = summary.results
    assert results is not None and results.revision == ab.revision == 2 and results.metric == "click"
    v1, v2 = results.versions
    assert (v1.units, v2.units) == (ab.counts[1], ab.counts[2]) and v1.outcomes + v2.outcomes == 10_000
    assert v1.quality.auc is not None and v2.quality.auc is not None and v1.quality.auc != v2.quality.auc
    assert 0.7 < v1.quality.auc < 0.9 and not results.srm.mismatch
    assert any("Online AUCs differ" in line for line in lines) and any("no mismatch" in line for line in lines)
    # The bad challenger (revision 5) was rolled back by the guardrail to the A/B split (revision 6).
    step = summary.guardrail
    assert step is not None and step.revision == 5 and step.rollback_revision == 6
    rollback = Deployment.objects.get(scene__name=DEMO_SCENE, revision=6)
    assert rollback.rollback_of == 4 and rollback.comment.startswith("Guardrail: v3 is worse than control v1")
    assert published.revision == summary.final_revision == 6
    assert any("The guardrail rolled revision 5 back by itself: v3 is worse" in line for line in lines)

    counts = (ModelVersion.objects.count(), TrainingRun.objects.count(), Deployment.objects.count())
    rerun = _demo("--impressions", "30000")
    assert "nothing retrained" in rerun and "Training" not in rerun
    assert counts == (ModelVersion.objects.count(), TrainingRun.objects.count(), Deployment.objects.count())
    assert ConfigEntry.objects.get(scene__name=DEMO_SCENE).revision == 6
    assert ClientToken.objects.filter(name="demo-client").count() == 1  # the old demo token was revoked


def _first_row() -> dict:
    from apps.demo.loop import demo_units

    names = ModelVersion.objects.get(scene__name=DEMO_SCENE, version=1).signature
    _, rows = demo_units(DataSource.objects.get(name="demo"), [f["name"] for f in names], count=1)
    return rows[0]
