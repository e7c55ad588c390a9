"""``python manage.py pai_check``: can this account sign PAI calls and use its OSS prefix? In plain words."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.training.pai.checks import check_account


class Command(BaseCommand):
    help = (
        "Checks the PAI account Mlab is configured with: that it can sign a ListTrainingJobs call, that the job "
        "spec is complete, and that it can put, read back and delete one probe object under MLAB_OSS_PREFIX. "
        "It names each missing permission or setting, and touches nothing else."
    )

    def handle(self, *args, **options):
        results = check_account(settings)
        for result in results:
            mark = self.style.SUCCESS("ok  ") if result.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {result.name}: {result.message}")
        failed = [r.name for r in results if not r.ok]
        if failed:
            raise CommandError(f"PAI is not ready: {len(failed)} check(s) failed ({', '.join(failed)}).")
        self.stdout.write(self.style.SUCCESS("PAI is ready: Mlab can submit jobs and move their data."))
