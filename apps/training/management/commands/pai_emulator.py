"""``python manage.py pai_emulator --port 8470``: run the PAI emulator until interrupted."""

from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.training.pai.emulator import PaiEmulator


class Command(BaseCommand):
    help = (
        "Runs the Mlab PAI emulator (an emulator of Alibaba Cloud PAI's training service, not PAI) on a "
        "loopback port. It accepts requests signed with MLAB_PAI_ACCESS_KEY_ID / MLAB_PAI_ACCESS_KEY_SECRET "
        "(or --access-key-id / --access-key-secret) and runs Mlab's trainer for each job."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (loopback by default).")
        parser.add_argument("--port", type=int, default=8470)
        parser.add_argument("--work-dir", default=None, help="Job directories (default: <var>/pai-emulator).")
        parser.add_argument(
            "--workspace-id", default=None, help="Default: MLAB_PAI_WORKSPACE_ID or emulator-workspace."
        )
        parser.add_argument("--access-key-id", default=None, help="Default: MLAB_PAI_ACCESS_KEY_ID.")
        parser.add_argument("--access-key-secret", default=None, help="Default: MLAB_PAI_ACCESS_KEY_SECRET.")
        parser.add_argument("--step-delay", type=float, default=0.5, help="Seconds each status before Running lasts.")
        parser.add_argument(
            "--bucket", default=None, help="Its OSS bucket (default: MLAB_OSS_BUCKET or mlab-emulator)."
        )
        parser.add_argument("--region", default=None, help="Its OSS region (default: MLAB_OSS_REGION or cn-emulator).")
        parser.add_argument(
            "--trainer-command",
            default=None,
            help="The command a job runs, with {hyperparameters} {input} {output} placeholders "
            "(default: Mlab's trainer).",
        )

    def handle(self, *args, **options):
        key_id = options["access_key_id"] or settings.MLAB_PAI_ACCESS_KEY_ID
        secret = options["access_key_secret"] or settings.MLAB_PAI_ACCESS_KEY_SECRET
        if not key_id or not secret:
            raise CommandError(
                "The emulator needs the keys requests are signed with: set MLAB_PAI_ACCESS_KEY_ID and "
                "MLAB_PAI_ACCESS_KEY_SECRET, or pass --access-key-id and --access-key-secret."
            )
        if options["step_delay"] < 0:
            raise CommandError("--step-delay cannot be negative.")
        command = shlex.split(options["trainer_command"]) if options["trainer_command"] else None
        emulator = PaiEmulator(
            work_dir=Path(options["work_dir"] or Path(settings.VAR_DIR) / "pai-emulator"),
            access_key_id=key_id,
            access_key_secret=secret,
            workspace_id=options["workspace_id"] or settings.MLAB_PAI_WORKSPACE_ID or "emulator-workspace",
            host=options["host"],
            port=options["port"],
            trainer_command=command,
            step_delay=options["step_delay"],
            bucket=options["bucket"] or settings.MLAB_OSS_BUCKET or "mlab-emulator",
            region=options["region"] or settings.MLAB_OSS_REGION or "cn-emulator",
            oss_prefix=settings.MLAB_OSS_PREFIX or "mlab",
        )
        try:
            emulator.start()
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}."
            ) from None

        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        self.stdout.write(
            f"Mlab PAI emulator (not Alibaba Cloud PAI) listening on {emulator.endpoint}\n"
            f"  workspace {emulator.workspace_id}, access key id {emulator.access_key_id}\n"
            f"  its OSS (an emulator of Alibaba Cloud OSS, not OSS) on {emulator.oss_endpoint}, bucket {emulator.bucket}\n"
            f"  point Mlab at it with MLAB_PAI_ENDPOINT={emulator.endpoint} MLAB_OSS_ENDPOINT={emulator.oss_endpoint}\n"
            f"  MLAB_OSS_BUCKET={emulator.bucket} MLAB_OSS_REGION={emulator.region}; Ctrl-C stops it."
        )
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            emulator.stop()
            self.stdout.write("Mlab PAI emulator stopped.")
