"""The runs' admin pages as their owner uses them: a name and a note, search and sorting by metric, the
comparison of 2 to 5 runs, metrics with their meaning, and "Edit and relaunch" (errors shown, never a 500)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from apps.templates.models import TemplateNode
from apps.training.models import TrainingRun
from apps.training.services import training_run_create
from tests.factories import TrainingRunFactory

pytestmark = pytest.mark.django_db

ROC = {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.5, 0.8, 1.0]}


@pytest.fixture
def alice(client, business_user, builtin_templates):
    client.force_login(business_user)
    return client


def _run(owner, **fields) -> TrainingRun:
    report = {
        "roc": ROC,
        "feature_importance": [{"feature": "age", "importance": 0.6}, {"feature": "hour", "importance": 0.4}],
    }
    return TrainingRunFactory(owner=owner, report=fields.pop("report", report), **fields)


def _list(client, **query) -> str:
    return client.get(reverse("admin:training_trainingrun_changelist"), query).content.decode()


def _listed_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<th class="field-id"><a href="[^"]*/(\d+)/change/', html)]


def test_the_owner_names_a_run_and_search_finds_it_by_name_note_template_and_owner(alice, business_user, other_user):
    mine = _run(business_user, metrics={"auc": 0.81})
    other = _run(business_user, metrics={"auc": 0.79})
    response = alice.post(
        reverse("admin:training_trainingrun_describe", args=[mine.pk]),
        {"name": "gbdt deeper trees", "note": "tried depth 6 on October"},
        follow=True,
    )
    assert "Name and note saved." in response.content.decode()
    mine.refresh_from_db()
    assert (mine.name, mine.note) == ("gbdt deeper trees", "tried depth 6 on October")
    page = alice.get(reverse("admin:training_trainingrun_change", args=[mine.pk])).content.decode()
    assert "<h1" in page and f"Run {mine.pk} · gbdt deeper trees" in unescape(page)

    assert _listed_ids(_list(alice, q="deeper")) == [mine.pk]
    assert _listed_ids(_list(alice, q="October")) == [mine.pk]
    assert set(_listed_ids(_list(alice, q="logistic"))) == {mine.pk, other.pk}  # the template's name
    assert set(_listed_ids(_list(alice, q="alice"))) == {mine.pk, other.pk}
    # Sorting by AUC, both ways (the metric lives in a JSON column).
    columns = re.findall(r'<th scope="col" class="[^"]*?(?:column-|)([\w-]+)"', _list(alice))
    order = str(columns.index("auc"))  # the action checkbox is column 0
    assert _listed_ids(_list(alice, o=order)) == [other.pk, mine.pk]
    assert _listed_ids(_list(alice, o=f"-{order}")) == [mine.pk, other.pk]


def test_only_the_owner_may_name_a_run(client, business_user, other_user, builtin_templates):
    from mlabsite.roles import BUSINESS_DEVELOPERS, role_group

    other_user.groups.add(role_group(BUSINESS_DEVELOPERS))
    run = _run(business_user)
    client.force_login(other_user)
    response = client.post(reverse("admin:training_trainingrun_describe", args=[run.pk]), {"name": "mine now"})
    assert response.status_code == 404  # another's run is not even found
    run.refresh_from_db()
    assert run.name == ""


def test_compare_two_to_five_runs_side_by_side(alice, business_user):
    first = _run(business_user, name="baseline", metrics={"auc": 0.79, "log_loss": 0.36, "positive_rate": 0.12},
                 params={"train": {"maxIter": 100, "regularizedType": "l2"}, "sample": {"limit": None}})  # fmt: skip
    second = _run(business_user, metrics={"auc": 0.81, "log_loss": 0.35, "positive_rate": 0.12},
                  params={"train": {"maxIter": 300, "regularizedType": "l2"}, "sample": {"limit": None}})  # fmt: skip
    changelist = reverse("admin:training_trainingrun_changelist")
    response = alice.post(changelist, {"action": "compare_runs", "_selected_action": [first.pk]}, follow=True)
    assert "Select 2 to 5 runs to compare (1 selected)." in response.content.decode()
    response = alice.post(changelist, {"action": "compare_runs", "_selected_action": [first.pk, second.pk]})
    assert response.status_code == 302 and response.url.endswith(f"?runs={first.pk},{second.pk}")

    html = unescape(alice.get(response.url).content.decode())
    differing = re.findall(r'<tr class="mlab-differs" data-param="([^"]+)">', html)
    assert differing == ["train.maxIter"]  # highlighted; the parameters alike are folded away
    assert re.search(r'data-param="train.maxIter">.*?<td>100</td><td>300</td>', html, re.S)
    assert "2 parameters are the same in every run" in html
    auc = re.search(r'<tr data-metric="auc">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'<td class="mlab-num mlab-best"[^>]*>0.810', auc)  # the better AUC is marked
    log_loss = re.search(r'<tr data-metric="log_loss">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'<td class="mlab-num mlab-best"[^>]*>0.350', log_loss)  # lower is better for log loss
    assert "0.5 = coin toss, 1.0 = perfect" in auc
    assert html.count('class="mlab-chart-series"') == 2 and 'data-chart="roc-overlay"' in html
    assert "run 1 · baseline" in html.replace(f"run {first.pk} · baseline", "run 1 · baseline")
    assert re.search(r"<th>age</th><td[^>]*>.*?60.0%", html, re.S)


def test_compare_refuses_runs_that_are_not_yours(client, business_user, other_user, builtin_templates):
    theirs = [_run(other_user), _run(other_user)]
    client.force_login(business_user)
    url = reverse("admin:training_trainingrun_compare") + "?runs=" + ",".join(str(r.pk) for r in theirs)
    response = client.get(url, follow=True)
    assert "Select 2 to 5 of your runs to compare." in response.content.decode()


def test_the_run_page_explains_each_metric_and_the_status(alice, business_user):
    run = _run(business_user, metrics={"auc": 0.803, "ks": 0.46, "log_loss": 0.33, "accuracy": 0.876,
                                       "positive_rate": 0.125, "threshold": 0.5})  # fmt: skip
    html = unescape(alice.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode())
    auc = re.search(r'<tr data-metric="auc">(.*?)</tr>', html, re.S).group(1)
    assert ">0.803<" in auc and "Good: ranks positives first most of the time." in auc
    assert "0.5 = coin toss, 1.0 = perfect" in auc
    accuracy = re.search(r'<tr data-metric="accuracy"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert "No better than always guessing the most common class (0.875)" in accuracy
    assert 'id="mlab-run-banner"' in html and "Done: the model is ready." in html
    assert re.search(r'<h1 id="mlab-run-title">Run \d+ · [^<]+<span class="mlab-status mlab-status-succeeded"', html)
    assert re.search(r'id="mlab-model-size">[\d.]+ (B|KiB|MiB)<', html)


def _relaunchable(builtin_templates, duck_source, user) -> TrainingRun:
    params = {"train": {"maxIter": 250}, "sample": {"features": ["age", "price"], "access_token": "tok-secret"}}
    return training_run_create(
        template=builtin_templates["binary-lr"], params=params, engine="local", datasource=duck_source, user=user
    )


def test_edit_and_relaunch_opens_the_launch_form_filled_with_the_run(
    alice, business_user, builtin_templates, duck_source
):
    run = _relaunchable(builtin_templates, duck_source, business_user)
    page = alice.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    url = unescape(re.search(r'href="([^"]+)" id="mlab-edit-relaunch"', page).group(1))
    response = alice.get(url)
    assert response.status_code == 200
    form = response.context["form"]
    assert not form.errors
    html = response.content.decode()
    assert re.search(r'name="train__maxIter" value="250"', html)
    assert re.findall(
        r'value="([^"]+)" checked', re.search(r'data-name="sample__features".*?</fieldset>', html, re.S).group(0)
    ) == ["age", "price"]
    password = re.search(r'<input type="password" name="sample__access_token"[^>]*>', html).group(0)
    assert "value=" not in password and "tok-secret" not in html  # secrets are never shown back
    assert f'name="relaunch_of" value="{run.pk}"' in html and "type Access token again" in html

    posted = {"datasource": "demo", "engine": "local", "relaunch_of": str(run.pk), "_launch": "1",
              "train__maxIter": "300", "sample__features": ["", "age", "price"]}  # fmt: skip
    response = alice.post(url.split("?")[0], posted)
    assert response.status_code == 302, response.context["form"].errors
    relaunched = TrainingRun.objects.exclude(pk=run.pk).get()
    assert relaunched.retry_of_id == run.pk and relaunched.params["train"]["maxIter"] == 300


def test_a_relaunch_that_no_longer_validates_opens_the_form_with_the_errors(
    alice, business_user, builtin_templates, duck_source
):
    run = _relaunchable(builtin_templates, duck_source, business_user)
    # The template changed since: the run's iterations are now out of range, and a parameter is gone.
    run.params["train"]["maxIter"] = 0
    run.params["train"]["oldKnob"] = 3
    run.save(update_fields=["params"])
    node = TemplateNode.objects.get(template=builtin_templates["binary-lr"], key="sample")
    node.overrides = {**node.overrides, "label": "is_vip", "positive_value": "true"}
    node.save()

    response = alice.post(reverse("admin:training_trainingrun_relaunch", args=[run.pk]))
    assert response.status_code == 302 and response.url.endswith(f"?run={run.pk}")
    response = alice.get(response.url)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["train__maxIter"] == ["Must be at least 1."]
    assert errors["sample__label"] == ["Locked by the template author; it cannot be changed."]
    html = unescape(response.content.decode())
    assert "train.oldKnob: no longer a parameter of this node" in html
    assert "cannot be relaunched as it was" in html
    assert TrainingRun.objects.count() == 1
