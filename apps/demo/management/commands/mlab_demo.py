"""Set up the demo: warehouse and data sources, built-in templates, the demo user and token, and the scene
``seller-union-ctr`` with two trained versions, a baseline and a 90/10 deployment, and a client token.

``mlab_demo --loop`` runs the SDK loop against a serving Mlab instead (what ``python -m mlabsite.serve --demo``
does once the server answers)."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.demo.loop import demo_loop, demo_units
from apps.demo.scene import DemoScene, demo_client_token, demo_scene_sync
from apps.demo.setup import (
    DEMO_DATASOURCE,
    DEMO_MYSQL_URL,
    DEMO_USERNAME,
    demo_mysql_sync,
    demo_user_sync,
    demo_warehouse_sync,
)
from apps.deploy.models import ModelVersion
from apps.templates.services import builtin_templates_sync
from apps.training.models import DataSource, TrainingRun

SNIPPET = """\
from mlab_client import ModelClient

with ModelClient("{base_url}", scene="{scene}", token="{token}") as client:
    p = client.predict({features}, unit_id="user-42")
    print(p.version, p.score, p.label)"""


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo: warehouse, data sources, built-in templates, demo user and token, and the "
        "seller-union-ctr scene (two trained versions, a 90/10 deployment, a client token). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Printed in the summary.")
        parser.add_argument(
            "--impressions",
            type=int,
            default=200_000,
            help="Impressions in a newly built warehouse (e.g. 1000000 for benchmarks). An existing file is kept.",
        )
        parser.add_argument(
            "--mysql",
            nargs="?",
            const=DEMO_MYSQL_URL,
            metavar="URL",
            help=f"Also copy the warehouse into MySQL/MariaDB (default {DEMO_MYSQL_URL}) as the demo-mysql source.",
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Instead of setting up, run the SDK loop against the Mlab serving at --base-url (A/B, rollback).",
        )
        parser.add_argument("--units", type=int, default=10_000, help="Units the loop predicts for.")
        parser.add_argument(
            "--pai",
            action="store_true",
            help="Instead of the scene, train one run on the pai engine against the PAI emulator (OSS included), "
            "executing its jobs in this process (make pai-demo runs it with a var/ of its own).",
        )

    def handle(
        self, *args, base_url: str, impressions: int, mysql: str | None, loop: bool, units: int, pai: bool, **options
    ):
        if loop:
            return self.loop(base_url=base_url.rstrip("/"), units=units)
        if pai:
            return self.pai(impressions=impressions)
        if impressions < 1:
            raise CommandError("--impressions must be at least 1.")
        try:
            warehouse = demo_warehouse_sync(impressions=impressions)
        except ValidationError as exc:  # e.g. MLAB_WAREHOUSE_PATH outside MLAB_DUCKDB_ROOTS
            raise CommandError(" ".join(exc.messages)) from None
        state = "built" if warehouse.created else "kept"
        self.stdout.write(
            f"Demo warehouse {state}: {warehouse.path} ({warehouse.impressions:,} impressions, {warehouse.users:,} users, "
            f"{warehouse.items:,} items, click rate {warehouse.click_rate:.3f}); data source 'demo'."
        )
        if mysql:
            try:
                counts = demo_mysql_sync(url=mysql)
            except Exception as exc:  # a clear line instead of a traceback: the server is often just not there
                reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else exc
                raise CommandError(f"Could not load the demo warehouse into MySQL ({mysql}): {reason}") from None
            self.stdout.write(f"MySQL copy: {counts}; data source 'demo-mysql'.")
        templates = builtin_templates_sync()
        self.stdout.write(f"Built-in templates: {', '.join(t.slug for t in templates)}")
        user = demo_user_sync()
        owner = get_user_model().objects.get(username=user.username)
        demo = self.scene(owner)
        token = demo_client_token(demo.scene, user=owner)
        self.stdout.write(self.style.SUCCESS("\nMlab demo is ready."))
        self.stdout.write(f"  Admin:     {base_url}/admin/   user {user.username!r}, password {user.password!r}")
        self.stdout.write(f"  API:       {base_url}/api/v1/templates/   header 'Authorization: Token {user.token}'")
        self.stdout.write(f"             (the API token of {user.username!r}, shown only now; a rerun makes a new one)")
        self.stdout.write(f"  API docs:  {base_url}/api/docs/")
        self.stdout.write(f"  Scene:     {base_url}/admin/deploy/scene/{demo.scene.pk}/change/")
        self.stdout.write(f"  Client token for {demo.scene.name!r} (shown only now; a rerun makes a new one): {token}")
        self.stdout.write("\nPredict from Python (pip install ./mlab_client):\n")
        self.stdout.write(
            SNIPPET.format(base_url=base_url, scene=demo.scene.name, token=token, features=_example_features(demo))
        )

    def pai(self, *, impressions: int) -> None:
        # Imported here: the PAI emulator loads the trainer (scikit-learn, LightGBM, onnx: about 2.5 s), which
        # the other modes do not need before they train, and the demo loop's process never does.
        from apps.demo.pai import demo_pai_run

        warehouse = demo_warehouse_sync(impressions=impressions)
        self.stdout.write(f"Demo warehouse: {warehouse.path} ({warehouse.impressions:,} impressions).")
        builtin_templates_sync()
        user = demo_user_sync()
        owner = get_user_model().objects.get(username=user.username)
        demo = demo_pai_run(user=owner, datasource=DataSource.objects.get(name=DEMO_DATASOURCE), say=self.stdout.write)
        run = demo.run
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status} on the PAI emulator: {run.error or run.stage}")
        state = run.external_state
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in (run.metrics or {}).items() if isinstance(v, float))
        self.stdout.write(self.style.SUCCESS(f"\nRun {run.pk} succeeded on PAI (the emulator) in {demo.seconds:.1f}s."))
        self.stdout.write(f"  PAI job:     {run.external_job_id} ({state.get('status')})")
        self.stdout.write(f"  sample:      {state.get('input_uri')}")
        self.stdout.write(f"  output:      {state.get('output_uri')}")
        self.stdout.write(f"  metrics:     {metrics}")
        artifact = run.artifact
        assert artifact is not None  # a succeeded run stored its artifact in the same transaction
        self.stdout.write(f"  artifact:    {artifact.sha256[:12]}… ({artifact.size:,} bytes), stored in Mlab")

    def scene(self, owner) -> DemoScene:
        started = time.monotonic()
        try:
            demo = demo_scene_sync(
                user=owner, datasource=DataSource.objects.get(name=DEMO_DATASOURCE), say=self.stdout.write
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        state = f"trained runs {', '.join(map(str, demo.trained))}" if demo.trained else "nothing retrained"
        self.stdout.write(
            f"Scene {demo.scene.name!r}: v{demo.baseline} (binary-lr) and v{demo.challenger} (binary-gbdt), "
            f"published revision {demo.published_revision()} ({state}; {time.monotonic() - started:.1f}s); "
            f"v{demo.bad} (deliberately bad, for the guardrail) waits for the demo loop."
        )
        return demo

    def loop(self, *, base_url: str, units: int) -> None:
        if units < 1:
            raise CommandError("--units must be at least 1.")
        owner = get_user_model().objects.filter(username=DEMO_USERNAME).first()
        source = DataSource.objects.filter(name=DEMO_DATASOURCE).first()
        if owner is None or source is None:
            raise CommandError("The demo is not set up: run `manage.py mlab_demo` first.")
        try:
            demo = demo_scene_sync(user=owner, datasource=source, say=self.stdout.write)
            demo_loop(demo, base_url=base_url, units=units, say=self.stdout.write)
        except Exception as exc:  # the loop's caller (serve --demo) keeps serving: one clear line, not a traceback
            raise CommandError(f"The demo loop failed: {type(exc).__name__}: {exc}") from exc


def _example_features(demo: DemoScene) -> str:
    """The features of one real demo impression, as a dict literal."""
    signature = ModelVersion.objects.get(scene=demo.scene, version=demo.baseline).signature
    _, rows = demo_units(DataSource.objects.get(name=DEMO_DATASOURCE), [f["name"] for f in signature], count=1)
    return repr(rows[0]) if rows else "{...}"
