"""Shared pytest fixtures: Warp initialised quietly, the devices to test on, and the ../shared/data folder.

The ``device`` fixture is parametrised over the devices Warp sees: ``cpu`` always, and every ``cuda:N`` when a
GPU is present, so the same suite runs on a GPU machine without changes (test ids carry the device,
e.g. ``test_forward[cuda:0]``). ``--device cpu`` (or ``cuda:0``) restricts the run to one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import warp as wp

wp.config.log_level = wp.LOG_ERROR
wp.init()

SHARED_DATA = Path(os.environ.get("NGP_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", action="append", default=None,
                     help="run device-parametrised tests on this Warp device only (repeatable; default: all present)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device_name" in metafunc.fixturenames:
        present = [str(d) for d in wp.get_devices()]
        chosen = metafunc.config.getoption("device") or present
        unknown = [d for d in chosen if d not in present]
        if unknown:
            raise pytest.UsageError(f"--device {unknown[0]}: not present (this machine has {', '.join(present)})")
        metafunc.parametrize("device_name", chosen, scope="session")


@pytest.fixture(scope="session")
def device(device_name: str) -> wp.context.Device:
    """A Warp device to run on: every device present in turn (see the module docstring)."""
    return wp.get_device(device_name)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; tests using it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
