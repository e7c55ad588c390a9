"""Production settings refuse to start without a secret key and pass `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _manage(*args, env_extra=None, drop=()):
    # DJANGO_ALLOW_ASYNC_UNSAFE is set in-process by the browser fixture; a deployment never has it.
    drop = {*drop, "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env.update({"DJANGO_SETTINGS_MODULE": "mlabsite.settings.production", **(env_extra or {})})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", drop=("DJANGO_SECRET_KEY",))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_passes_check_deploy():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_extra={
            "DJANGO_SECRET_KEY": "x" * 20 + "-production-grade-secret-key-" + "y" * 30,
            "DJANGO_ALLOWED_HOSTS": "mlab.example.com",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_lets_data_sources_open_duckdb_files_under_var_only():
    """The test settings add pytest's temporary root to MLAB_DUCKDB_ROOTS; production keeps the default: var/."""
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print([str(p) for p in settings.MLAB_DUCKDB_ROOTS], settings.VAR_DIR)",
        # A REDIS_URL, never connected to: without one (the embedded suite) these settings would start the
        # embedded Redis daemon under the checkout's var/, and leave it running.
        env_extra={"DJANGO_SECRET_KEY": "x" * 50, "REDIS_URL": "redis://settings-test.invalid:6379/0"},
        drop=("MLAB_DUCKDB_ROOTS", "MLAB_VAR_DIR"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"['{ROOT / 'var'}'] {ROOT / 'var'}"
