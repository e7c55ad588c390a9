"""pytest fixtures of the PAI engine (loaded by the root conftest.py): the PAI emulator on a free port."""

from __future__ import annotations

import pytest

from .emulator import PaiEmulator


@pytest.fixture
def pai_emulator(tmp_path_factory):
    """A started PAI emulator on a free loopback port, stopped (with every job it runs) after the test.

    It yields the :class:`~apps.training.pai.emulator.PaiEmulator`: ``endpoint``, ``access_key_id``,
    ``access_key_secret``, ``sts_credentials`` (id, secret, token), ``workspace_id``, ``settings()`` (the
    MLAB_PAI_* and MLAB_OSS_* values pointing at it), ``client(**options)``, ``faults`` (fail_next, delay_next,
    create_failed, fail_running, deny), ``jobs()``, ``wait(job_id)``, ``algorithms`` (the registry),
    ``trainer_command`` (what the pre-registered mlab-trainer runs: Mlab's trainer by default; tests may swap in
    another), and its OSS: ``oss_endpoint``, ``bucket``, ``region``, ``oss_store(**overrides)`` (Mlab's
    OssStore on it), ``oss_uri(key)``, ``oss_state`` and ``oss_faults`` (fail_next, cut_next, deny).
    """
    emulator = PaiEmulator(work_dir=tmp_path_factory.mktemp("pai-emulator"), step_delay=0.02)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
