"""Periodic jobs, for `python manage.py rqcron apps.deploy.cron` (RQ's cron scheduler)."""

from rq import cron

from apps.deploy.jobs import sweep_publications

cron.register(sweep_publications, "default", interval=30)
