"""The path tracer against Mitsuba 3 (an independent renderer, variant ``scalar_rgb``) on the same scenes.

Statistic: each renderer renders the scene twice with independent seeds. Per 8x8-pixel block and channel, ``d``
is the difference of the two renderers' means and ``v`` the variance of that difference, estimated from the
spread of each renderer's own two renders. If both estimate the same image, ``R = sum(d^2) / sum(v)`` over all lit
blocks is ~1 (pooled over ~190 block-channels, so the estimate itself is stable); a bias of a few noise standard
deviations anywhere drives it far above. The test requires ``R < 1.6`` and a mean absolute block difference
under 3% of the image level.
"""

from __future__ import annotations

import numpy as np
import pytest

from ngp_sdk.nrc import PathTracer, build_scene, cornell_box
from ngp_sdk.nrc.scene import glossy_box

mi = pytest.importorskip("mitsuba", reason="needs mitsuba (pip install mitsuba; the test extra)")

SIZE, SPP, BLOCK = 64, 128, 8


def _to_mitsuba(value, spp: int):
    if isinstance(value, np.ndarray) and value.shape == (4, 4):
        return mi.ScalarTransform4f(value.tolist())
    if isinstance(value, dict):
        out = {k: _to_mitsuba(v, spp) for k, v in value.items()}
        if out.get("type") == "perspective":
            out["sampler"] = {"type": "independent", "sample_count": spp}
            out["film"] = {**out.get("film", {}), "rfilter": {"type": "box"}, "pixel_format": "rgb"}
        if out.get("type") == "rgb":
            out["value"] = list(out["value"])
        return out
    if isinstance(value, tuple):
        return list(value)
    return value


def _blocks(img: np.ndarray) -> np.ndarray:
    h, w, c = img.shape
    return img.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).mean(axis=(1, 3))


@pytest.mark.slow
@pytest.mark.parametrize("make", [cornell_box, glossy_box], ids=["cornell", "glossy"])
def test_images_agree_with_mitsuba_within_the_noise_of_both(device, make):
    mi.set_variant("scalar_rgb")
    desc = make(SIZE, SIZE)
    ours = []
    for seed in (1, 2):
        ours.append(PathTracer(build_scene(desc), device=device, seed=seed).render(spp=SPP, batch=32))
    scene = mi.load_dict(_to_mitsuba(desc, SPP))
    theirs = [np.array(mi.render(scene, spp=SPP, seed=seed))[..., :3] for seed in (11, 12)]
    a1, a2, b1, b2 = (_blocks(x) for x in (*ours, *theirs))
    # variance of a block mean estimated from the two independent renders of the same renderer
    var = ((a1 - a2) ** 2 + (b1 - b2) ** 2) / 4  # var((x1 + x2) / 2) for each, summed
    diff = (a1 + a2) / 2 - (b1 + b2) / 2
    lit = (a1 + b1) > 1e-3
    ratio = float(np.sum(diff[lit] ** 2) / np.sum(var[lit]))
    assert ratio < 1.6, ratio
    assert np.mean(np.abs(diff)) < 0.03 * np.mean((a1 + b1) / 2)  # and no bias in the overall level
