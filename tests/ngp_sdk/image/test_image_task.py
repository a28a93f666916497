"""Image primitive end to end on small data: training improves PSNR, snapshots round-trip, memory stays bounded."""

from __future__ import annotations

import numpy as np
import pytest

from ngp_sdk import ImageConfig, Session
from ngp_sdk.core.config import EmaConfig, HashGridConfig, NetworkConfig, OptimizerConfig, TrainingConfig
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.core.images import save_image
from ngp_sdk.image.data import ImageData, load_image

SMALL = ImageConfig(
    encoding=HashGridConfig(n_levels=8, log2_hashmap_size=14, per_level_scale=1.5),
    network=NetworkConfig(n_neurons=32, n_hidden_layers=1),
    training=TrainingConfig(batch_size=4096),
)


def make_test_image(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.5 + 0.5 * np.sin(9 * x), 0.5 + 0.5 * np.cos(7 * y), (x * y) % 1.0], axis=-1)
    return (img * 255).astype(np.uint8)


def test_training_improves_psnr_and_renders_any_size(device):
    s = Session.image(make_test_image(), config=SMALL, device=device)
    before = s.evaluate()["psnr"]
    r = s.train(steps=60)
    after = s.evaluate()["psnr"]
    assert r.steps == 60 and s.step_count == 60 and np.isfinite(r.loss)
    assert after > before + 10 and after > 25, (before, after)
    big = s.render(width=200, height=150)
    assert big.shape == (150, 200, 3) and big.dtype == np.float32
    assert np.isfinite(big).all()


def test_train_needs_a_budget(device):
    s = Session.image(make_test_image(), config=SMALL, device=device)
    with pytest.raises(Exception, match="steps or seconds"):
        s.train()


@pytest.mark.parametrize("suffix", [".ingp", ".msgpack"])
def test_snapshot_round_trip_renders_identical_image(tmp_path, device, suffix):
    cfg = ImageConfig(encoding=SMALL.encoding, network=SMALL.network, training=SMALL.training,
                      optimizer=OptimizerConfig(ema=EmaConfig(decay=0.9)))
    s = Session.image(make_test_image(), config=cfg, device=device)
    s.train(steps=15)
    path = s.save(tmp_path / f"img{suffix}", include_optimizer=True)
    a = s.render(width=31, height=17)
    t = Session.load(path, device=device)
    assert t.step_count == 15 and t.primitive == "image"
    np.testing.assert_array_equal(t.render(width=31, height=17), a)
    assert t.task.size == (64, 48)
    # training continues from the snapshot when given the image again
    u = Session.load(path, device=device, image=ImageData(pixels=make_test_image()))
    u.train(steps=2)
    assert u.step_count == 17


def test_render_only_snapshot_cannot_train(tmp_path, device):
    s = Session.image(make_test_image(), config=SMALL, device=device)
    s.train(steps=2)
    t = Session.load(s.save(tmp_path / "a.ingp"), device=device)
    with pytest.raises(DataError, match="without its image"):
        t.step()


def test_snapshot_with_mismatched_parameters_is_rejected(tmp_path, device):
    from ngp_sdk.core.snapshot import read_snapshot, write_snapshot

    s = Session.image(make_test_image(), config=SMALL, device=device)
    doc = read_snapshot(s.save(tmp_path / "a.ingp"))
    doc["state"]["params"]["network"] = np.zeros(7, np.float32)
    write_snapshot(tmp_path / "b.ingp", {k: v for k, v in doc.items() if k not in ("format", "version")})
    with pytest.raises(SnapshotError, match="does not match its config"):
        Session.load(tmp_path / "b.ingp", device=device)
    doc["primitive"] = "hologram"
    write_snapshot(tmp_path / "c.ingp", {k: v for k, v in doc.items() if k not in ("format", "version")})
    with pytest.raises(SnapshotError, match="unknown primitive"):
        Session.load(tmp_path / "c.ingp", device=device)


def test_image_files_round_trip(tmp_path):
    img = make_test_image()
    lin = ImageData(pixels=img).linear_rows(0, img.shape[0])
    for suffix in (".png", ".exr"):
        p = save_image(tmp_path / f"x{suffix}", lin)
        back = load_image(p)
        np.testing.assert_allclose(back.linear_rows(0, back.height), lin, atol=2e-3 if suffix == ".png" else 1e-6)
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read"):
        load_image(tmp_path / "bad.png")
    txt = tmp_path / "x.txt"
    txt.write_text("x")
    with pytest.raises(DataError, match="unsupported image type"):
        load_image(txt)


def test_image_data_validation():
    with pytest.raises(DataError, match=r"\[H, W, 3\]"):
        ImageData(pixels=np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="NaN"):
        ImageData(pixels=np.full((2, 2, 3), np.nan, np.float32))
