"""python manage.py train TEMPLATE [--set node.param=value …] [--engine local|pai] [--datasource NAME] [--wait]"""

from __future__ import annotations

import time

import django_rq
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rq import Worker

from apps.templates.models import AlgorithmTemplate
from apps.templates.nodes import ParamError
from apps.templates.validation import RunParamsInvalid, template_specs
from apps.training.models import DataSource, TrainingRun
from apps.training.services import training_run_create
from apps.training.worker import MlabSimpleWorker

FINISHED = set(TrainingRun.FINISHED)


def parse_assignments(template: AlgorithmTemplate, assignments: list[str]) -> dict[str, dict]:
    """`node.param=value` texts → {node: {param: value}} typed by the parameters' declarations."""
    specs = {spec.key: spec for spec in template_specs(template)}
    params: dict[str, dict] = {}
    problems = []
    for text in assignments:
        target, sep, value = text.partition("=")
        node_key, dot, name = target.partition(".")
        if not sep or not dot:
            problems.append(f"{text!r}: expected node.param=value")
        elif node_key not in specs:
            problems.append(f"{target}: no node {node_key!r} (nodes: {', '.join(specs)})")
        elif name not in specs[node_key].node_type.param_map:
            names = ", ".join(specs[node_key].node_type.param_map)
            problems.append(f"{target}: {node_key} has no parameter {name!r} ({names})")
        else:
            try:
                params.setdefault(node_key, {})[name] = specs[node_key].node_type.param_map[name].parse_text(value)
            except ParamError as exc:
                problems.append(f"{target}: {exc}")
    if problems:
        raise CommandError("Bad --set:\n  " + "\n  ".join(problems))
    return params


def run_jobs_here() -> None:
    """Execute the queued jobs in this process (used by --wait when no worker is running)."""
    queue = django_rq.get_queue("default")
    MlabSimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(
        burst=True, with_scheduler=True
    )


def workers_alive() -> bool:
    queue = django_rq.get_queue("default")
    return bool(Worker.all(queue=queue))


class Command(BaseCommand):
    help = "Launch a training run of a template. Exit status 0 only if --wait and the run succeeded."

    def add_arguments(self, parser):
        parser.add_argument("template", help="template slug, e.g. binary-lr")
        parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="NODE.PARAM=VALUE")
        parser.add_argument("--engine", choices=TrainingRun.Engine.values, default="local")
        parser.add_argument("--datasource", default="demo")
        parser.add_argument("--user", default="demo", help="who launches the run (default: the demo user)")
        parser.add_argument("--wait", action="store_true", help="follow the run until it ends")

    def handle(self, *args, template, assignments, engine, datasource, user, wait, **options):
        try:
            template_obj = AlgorithmTemplate.objects.prefetch_related("nodes").get(slug=template)
        except AlgorithmTemplate.DoesNotExist:
            slugs = ", ".join(AlgorithmTemplate.objects.values_list("slug", flat=True))
            raise CommandError(f"No template {template!r}. Templates: {slugs or 'none (run mlab_demo)'}.") from None
        try:
            source = DataSource.objects.get(name=datasource)
        except DataSource.DoesNotExist:
            raise CommandError(f"No data source {datasource!r} (run mlab_demo for 'demo').") from None
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {user!r} (run mlab_demo for 'demo', or pass --user).") from None
        params = parse_assignments(template_obj, assignments)
        try:
            run = training_run_create(
                template=template_obj, params=params, engine=engine, datasource=source, user=owner
            )
        except RunParamsInvalid as invalid:
            raise CommandError(_format_errors(invalid.errors)) from None
        except ValidationError as exc:
            raise CommandError(_format_errors(exc.message_dict)) from None
        self.stdout.write(f"Run {run.pk} queued ({template_obj.slug}, {engine}, {source.name}).")
        if not wait:
            return
        run = self.follow(run)
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error or run.stage}")
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in (run.metrics or {}).items() if isinstance(v, float))
        self.stdout.write(self.style.SUCCESS(f"Run {run.pk} succeeded: {metrics}"))

    def follow(self, run: TrainingRun) -> TrainingRun:
        """Print the run's progress until it ends. Without a running worker, execute its jobs here."""
        shown = None
        while True:
            run.refresh_from_db()
            line = f"  {run.status:<9} {run.progress:>3}%  {run.stage}"
            if line != shown:
                self.stdout.write(line)
                shown = line
            if run.status in FINISHED:
                return run
            if not workers_alive():
                if shown is not None and run.status == TrainingRun.Status.QUEUED:
                    self.stdout.write("No worker is running; executing the run in this process.")
                run_jobs_here()
                run.refresh_from_db()
                if run.status == TrainingRun.Status.QUEUED:
                    raise CommandError(f"Run {run.pk} is queued but no job for it was found in the queue.")
            time.sleep(0.5)


def _format_errors(errors, prefix: str = "") -> str:
    lines = []
    for key, value in errors.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.append(_format_errors(value, prefix=f"{name}."))
        else:
            lines.extend(f"{name}: {message}" for message in value)
    return "\n".join(lines)
