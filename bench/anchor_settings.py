"""Settings of the bare anchor of bench/propagation.py: a minimal async Django app (no database, no
middleware, no installed apps) whose one view waits on Redis pub/sub and answers a constant JSON."""

import os

SECRET_KEY = "bench-anchor"  # noqa: S105 (a benchmark's throwaway process; nothing is signed)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict = {}
ROOT_URLCONF = "bench.anchor_app"
USE_TZ = True
# The Redis the publisher uses, and the constant JSON the view answers (written by the bench).
ANCHOR_REDIS_URL = os.environ["REDIS_URL"]
ANCHOR_BODY_PATH = os.environ["BENCH_ANCHOR_BODY"]
