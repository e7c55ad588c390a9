"""Set up the demo: warehouse and data sources, built-in templates, the demo user and token."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.deploy.demo import DEMO_MYSQL_URL, demo_mysql_sync, demo_user_sync, demo_warehouse_sync
from apps.templates.services import builtin_templates_sync


class Command(BaseCommand):
    help = "Create (or refresh) the demo: warehouse, data sources, built-in templates, demo user and token. Idempotent."

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

    def handle(self, *args, base_url: str, impressions: int, mysql: str | None, **options):
        if impressions < 1:
            raise CommandError("--impressions must be at least 1.")
        warehouse = demo_warehouse_sync(impressions=impressions)
        state = "built" if warehouse.created else "kept"
        self.stdout.write(
            f"Demo warehouse {state}: {warehouse.path} ({warehouse.impressions:,} impressions, {warehouse.users:,} users, "
            f"{warehouse.items:,} items, click rate {warehouse.click_rate:.3f}); data source 'demo'."
        )
        if mysql:
            try:
                counts = demo_mysql_sync(url=mysql)
            except Exception as exc:  # a clear line instead of a traceback: the server is often just not there
                raise CommandError(f"Could not load the demo warehouse into MySQL ({mysql}): {exc}") from None
            self.stdout.write(f"MySQL copy: {counts}; data source 'demo-mysql'.")
        templates = builtin_templates_sync()
        self.stdout.write(f"Built-in templates: {', '.join(t.slug for t in templates)}")
        user = demo_user_sync()
        self.stdout.write(self.style.SUCCESS("\nMlab demo is ready."))
        self.stdout.write(f"  Admin:     {base_url}/admin/   user {user.username!r}, password {user.password!r}")
        self.stdout.write(f"  API:       {base_url}/api/v1/templates/   header 'Authorization: Token {user.token}'")
        self.stdout.write(f"  API docs:  {base_url}/api/docs/")
