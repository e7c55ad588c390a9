"""Set up the demo: built-in templates, the demo user and token, then print how to get in."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.deploy.demo import demo_user_sync
from apps.templates.services import builtin_templates_sync


class Command(BaseCommand):
    help = "Create (or refresh) the demo: built-in templates, demo user and API token. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Printed in the summary.")

    def handle(self, *args, base_url: str, **options):
        templates = builtin_templates_sync()
        self.stdout.write(f"Built-in templates: {', '.join(t.slug for t in templates)}")
        user = demo_user_sync()
        self.stdout.write(self.style.SUCCESS("\nMlab demo is ready."))
        self.stdout.write(f"  Admin:     {base_url}/admin/   user {user.username!r}, password {user.password!r}")
        self.stdout.write(f"  API:       {base_url}/api/v1/templates/   header 'Authorization: Token {user.token}'")
        self.stdout.write(f"  API docs:  {base_url}/api/docs/")
