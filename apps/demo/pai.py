"""The PAI demo: one run of a template on the pai engine, end to end, against the PAI emulator (OSS included),
driven by the same code a real account uses: the sample and the trainer's code up to OSS, an inline
AlgorithmSpec, the polls, the model back from the job's OSS output, checked and stored.

The emulator runs in this process and the run's jobs are executed here too (an RQ worker started elsewhere
would not point at this emulator): ``make pai-demo`` runs it with a var/ directory of its own.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import django_rq
from django.conf import settings
from django.test.utils import override_settings

from apps.templates.models import AlgorithmTemplate
from apps.training.models import DataSource, TrainingRun
from apps.training.pai.emulator import PaiEmulator
from apps.training.services import training_run_create
from apps.training.worker import MlabSimpleWorker

DEMO_IMAGE = "emulator.example/mlab/python:3.11"  # the emulator runs the job with this machine's Python
TIMEOUT_SECONDS = 600

Say = Callable[[str], object]


@dataclass(frozen=True)
class PaiDemoRun:
    run: TrainingRun
    seconds: float


def demo_pai_run(*, user, datasource: DataSource, slug: str = "binary-lr", say: Say = print) -> PaiDemoRun:
    """Train ``slug`` on the pai engine against a PAI emulator started for the occasion; returns the run."""
    template = AlgorithmTemplate.objects.get(slug=slug)
    with tempfile.TemporaryDirectory(prefix="mlab-pai-demo-", dir=settings.VAR_DIR) as work_dir:
        emulator = PaiEmulator(work_dir=Path(work_dir), step_delay=0.3).start()
        try:
            say(f"PAI emulator on {emulator.endpoint}, its OSS on {emulator.oss_endpoint} (an emulator, not PAI).")
            pointed = {
                **emulator.settings(),
                "MLAB_PAI_ALGORITHM_NAME": "",  # an inline AlgorithmSpec, as on a real account by default
                "MLAB_PAI_IMAGE": DEMO_IMAGE,
                "MLAB_PAI_POLL_SECONDS": 0.5,
            }
            with override_settings(**pointed):
                started = time.monotonic()
                run = training_run_create(
                    template=template, params={}, engine=TrainingRun.Engine.PAI, datasource=datasource, user=user
                )
                say(f"Run {run.pk} ({slug}) queued for PAI.")
                run = _follow(run, say)
                return PaiDemoRun(run=run, seconds=time.monotonic() - started)
        finally:
            emulator.stop()


def _follow(run: TrainingRun, say: Say) -> TrainingRun:
    """Execute the run's jobs here (submission, then each scheduled poll) until it ends, saying each stage."""
    queue = django_rq.get_queue("default")
    worker = MlabSimpleWorker([queue], connection=queue.connection, serializer=queue.serializer)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    shown = ""
    while time.monotonic() < deadline:
        worker.work(burst=True, with_scheduler=True)
        run.refresh_from_db()
        line = f"  {run.status:<9} {run.progress:>3}%  {run.stage}"
        if line != shown:
            say(line)
            shown = line
        if run.is_finished:
            return run
        time.sleep(0.25)
    raise TimeoutError(f"run {run.pk} did not finish within {TIMEOUT_SECONDS} s (stage: {run.stage})")
