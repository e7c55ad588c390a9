"""``python manage.py pai_cleanup --older-than 7d [--dry-run]``: delete old runs' objects from OSS."""

from __future__ import annotations

import datetime as dt
import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.training.pai.errors import PaiError
from apps.training.pai.oss import OssStore

_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> dt.timedelta:
    """``7d``, ``12h``, ``30m`` → a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text or "")
    if not match or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not an age such as 7d, 12h or 30m.")
    return dt.timedelta(**{_UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = (
        "Deletes the OSS objects (sample, model, report) of every run under <MLAB_OSS_PREFIX>/runs/ whose newest "
        "object is older than --older-than, and aborts multipart uploads under the prefix started before then. "
        "The trainer's code and anything outside the prefix are left alone. An OSS lifecycle rule can do the "
        "same (see README)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="An age: 7d, 12h, 30m.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted; delete nothing.")

    def handle(self, *args, **options):
        try:
            age = parse_age(options["older_than"])
            store = OssStore.from_settings(settings)
            report = store.cleanup_runs(age, dry_run=options["dry_run"])
        except (PaiError, ValueError) as error:
            raise CommandError(str(error)) from None
        verb = "Would delete" if options["dry_run"] else "Deleted"
        where = store.uri(store.key("runs") + "/")
        if not report.runs:
            self.stdout.write(f"No run under {where} is older than {options['older_than']}.")
        else:
            runs = ", ".join(report.runs)
            self.stdout.write(
                f"{verb} {report.objects} object(s), {report.bytes} bytes, of {len(report.runs)} run(s) under {where}: {runs}."
            )
        if report.aborted_uploads:
            self.stdout.write(f"Aborted {report.aborted_uploads} unfinished multipart upload(s).")
