"""DeviceError: a device that does not exist, or arrays on another device, are typed errors at the door."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import warp as wp

from ngp_sdk import DeviceError, Session
from ngp_sdk.core.config import HashGridConfig, NetworkConfig
from ngp_sdk.core.device import available_devices, check_device, resolve_device
from ngp_sdk.core.fields import GridMlpField, HashGrid

MISSING = "cuda:7"


def test_missing_device_is_a_device_error():
    assert "cpu" in available_devices()
    with pytest.raises(DeviceError, match="not available here"):
        resolve_device(MISSING)
    with pytest.raises(DeviceError, match="cuda:7"):
        Session.image(np.zeros((4, 4, 3), np.uint8), device=MISSING)
    with pytest.raises(DeviceError):
        resolve_device("tpu")


def test_arrays_on_another_device_are_refused(device):
    stranger = types.SimpleNamespace(device="elsewhere")  # what a wp.array on another device looks like
    with pytest.raises(DeviceError, match="positions is on elsewhere"):
        check_device(stranger, device, "positions")
    check_device(wp.zeros(3, device=device), device, "positions")  # same device: fine


@pytest.mark.skipif(not wp.is_cuda_available(), reason="needs a CUDA device next to the CPU")
def test_fields_refuse_arrays_from_another_device():
    grid = HashGrid(HashGridConfig(n_levels=2, log2_hashmap_size=8), 3, device="cpu")
    with pytest.raises(DeviceError, match="positions is on cuda"):
        grid.forward(wp.zeros((4, 3), dtype=wp.float32, device="cuda:0"))

    class Field(GridMlpField):
        n_dims = 2
        n_output_dims = 3

    f = Field(HashGridConfig(n_levels=2, log2_hashmap_size=8), NetworkConfig(n_neurons=16), device="cuda:0")
    with pytest.raises(DeviceError):
        f.infer(wp.zeros((4, 2), dtype=wp.float32, device="cpu"))


def test_cli_reports_a_missing_device_in_one_line():
    r = subprocess.run([sys.executable, "-m", "ngp_sdk.cli", "--device", MISSING, "demo", "--primitive", "image",
                        "--seconds", "1", "--out-dir", "/nonexistent-never-written"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "cuda:7" in lines[0] and "Traceback" not in r.stderr
