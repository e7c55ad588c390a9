"""pytest fixtures of the PAI engine (loaded by the root conftest.py): the PAI emulator on a free port."""

from __future__ import annotations

import pytest

from .emulator import PaiEmulator


@pytest.fixture
def pai_emulator(tmp_path_factory):
    """A started PAI emulator on a free loopback port, stopped (with every job it runs) after the test.

    It yields the :class:`~apps.training.pai.emulator.PaiEmulator`: ``endpoint``, ``access_key_id``,
    ``access_key_secret``, ``workspace_id``, ``settings()`` (the MLAB_PAI_* values pointing at it),
    ``client(**options)``, ``faults`` (fail_next, delay_next, create_failed, fail_running), ``jobs()``,
    ``wait(job_id)`` and ``trainer_command`` (Mlab's trainer by default; tests may swap in another).
    """
    emulator = PaiEmulator(work_dir=tmp_path_factory.mktemp("pai-emulator"), step_delay=0.02)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
