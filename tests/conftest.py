"""Shared pytest fixtures: Warp initialised quietly on the CPU, and the ../shared/data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import warp as wp

wp.config.log_level = wp.LOG_ERROR
wp.init()

SHARED_DATA = Path(os.environ.get("NGP_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def device() -> wp.context.Device:
    """The device tests run on: ``$NGP_TEST_DEVICE`` or the CPU."""
    return wp.get_device(os.environ.get("NGP_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; tests using it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
