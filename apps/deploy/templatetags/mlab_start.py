"""The admin index's "Start here": the templates one may launch, one's latest runs and one's scenes with what is
live in each, so that the usual path (launch → run → register → deploy) starts with one click.
``{% load mlab_start %}{% start_here %}`` (mlabsite/templates/admin/index.html)."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

from apps.templates.metrics import human_number, key_metric
from apps.templates.selectors import template_list
from apps.training.selectors import training_run_list

from .. import selectors

register = template.Library()


def _url(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


@register.inclusion_tag("admin/mlab_start_here.html", takes_context=True)
def start_here(context) -> dict:
    user = context["request"].user
    templates, runs, scenes = [], [], []
    if user.has_perm("training.add_trainingrun"):
        templates = [
            {"template": t, "launch_url": _url("admin:training_trainingrun_launch", t.pk)}
            for t in template_list(user=user).order_by("task_type", "name")[:8]
        ]
    if user.has_perm("training.view_trainingrun"):
        for run in training_run_list(user=user)[:5]:
            headline = key_metric(run.metrics)
            runs.append(
                {
                    "run": run,
                    "url": _url("admin:training_trainingrun_change", run.pk),
                    "metric": f"{headline[0].upper() if headline[0] == 'auc' else 'R²'} {human_number(headline[1])}"
                    if headline
                    else "",
                }
            )
    if user.has_perm("deploy.view_scene"):
        for scene in selectors.scene_list(user=user)[:5]:
            config = getattr(scene, "config", None)
            live = selectors.config_summary(config.content) if config and config.revision else "nothing published"
            scenes.append({"scene": scene, "url": _url("admin:deploy_scene_change", scene.pk), "live": live})
    return {"start_templates": templates, "start_runs": runs, "start_scenes": scenes}
