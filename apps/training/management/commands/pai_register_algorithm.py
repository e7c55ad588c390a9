"""``python manage.py pai_register_algorithm [--name N] [--algorithm-version vX.Y.Z]``: register Mlab's trainer in the
PAI workspace (CreateAlgorithm / CreateAlgorithmVersion), for teams that prefer a registered algorithm."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.training.pai.client import PaiClient
from apps.training.pai.errors import PaiError
from apps.training.pai.oss import OssStore
from apps.training.pai.registration import RegistrationRefused, register_algorithm
from apps.training.pai.request import JobSettings


class Command(BaseCommand):
    help = (
        "Registers Mlab's trainer as a custom algorithm of the PAI workspace: uploads its code to OSS (once per "
        "trainer version), creates the algorithm if its name is new, and creates the version, declaring every "
        "hyperparameter the trainer takes. Jobs use it when MLAB_PAI_ALGORITHM_NAME and _VERSION name it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", default=None, help="Default: MLAB_PAI_ALGORITHM_NAME, else mlab-trainer.")
        parser.add_argument(
            "--algorithm-version", dest="algorithm_version", default=None, help="Default: MLAB_PAI_ALGORITHM_VERSION."
        )

    def handle(self, *args, **options):
        job_settings = JobSettings.from_settings(settings)
        job_settings = replace(
            job_settings,
            algorithm_name=options["name"] or job_settings.algorithm_name or "mlab-trainer",
            algorithm_version=options["algorithm_version"] or job_settings.algorithm_version,
        )
        try:
            client = PaiClient.from_settings(settings)
            store = client.oss or OssStore.from_settings(settings, credentials=client.credentials)
            done = register_algorithm(client, store, job_settings)
        except (PaiError, RegistrationRefused, ValueError) as error:
            raise CommandError(str(error)) from None
        code = "uploaded" if not done.code.reused else "already on OSS"
        self.stdout.write(f"Trainer code {done.code.uri} ({code}).")
        if done.created_algorithm:
            self.stdout.write(f"Created the algorithm {done.name} ({done.algorithm_id}).")
        if done.created_version:
            self.stdout.write(self.style.SUCCESS(f"Registered {done.name} {done.version}."))
        else:
            self.stdout.write(f"{done.name} {done.version} is already registered with this trainer: nothing to do.")
        if settings.MLAB_PAI_ALGORITHM_NAME != done.name or settings.MLAB_PAI_ALGORITHM_VERSION != done.version:
            self.stdout.write(
                f"Jobs use it once MLAB_PAI_ALGORITHM_NAME={done.name} and MLAB_PAI_ALGORITHM_VERSION={done.version}."
            )
