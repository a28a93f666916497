"""The CUDA compile check (warp_kernels.cuda_check) covers the kernels the tasks' default configs build.

``warp_kernels`` may not import the SDK, so ``default_variants`` restates the default layouts; this test builds
the default fields of every primitive and checks that each factory-made kernel they use is in those variants.
"""

from __future__ import annotations

from ngp_sdk import ImageConfig, NerfConfig, SdfConfig
from ngp_sdk.image.field import ImageField
from ngp_sdk.nerf.field import NerfField
from ngp_sdk.sdf.field import SdfField
from warp_kernels.cuda_check import default_variants


def _grid_key(layout) -> tuple:
    return layout.n_dims, layout.n_features_per_level, layout.interpolation


def _mlp_key(layout) -> tuple:
    # tile kernels depend on the widths (and on whether there is a hidden layer); depth and activation are runtime
    return layout.n_input, layout.n_output, layout.n_neurons if layout.n_hidden_layers else 0


def test_default_variants_cover_the_default_fields():
    variants = default_variants()
    grids = {_grid_key(g) for v in variants for g in v.hash_grids}
    mlps = {_mlp_key(m) for v in variants for m in v.mlps}
    image, nerf, sdf = ImageConfig(), NerfConfig(), SdfConfig()
    fields = [ImageField(image.encoding, image.network, device="cpu"),
              NerfField(nerf, ((0, 0, 0), (1, 1, 1)), device="cpu"),
              SdfField(sdf.encoding, sdf.network, device="cpu")]
    used_grids = {_grid_key(f.grid.layout) for f in fields}
    used_mlps = {_mlp_key(f.mlp.layout) for f in fields if hasattr(f, "mlp")}
    used_mlps |= {_mlp_key(fields[1].density_mlp.layout), _mlp_key(fields[1].color_mlp.layout)}
    from ngp_sdk.nrc.cache import RadianceCache
    from ngp_sdk.nrc.config import NrcConfig

    cache = RadianceCache(NrcConfig(), device="cpu")
    used_grids.add(_grid_key(cache.grid.layout))
    used_mlps.add(_mlp_key(cache.mlp.layout))
    assert used_grids <= grids, used_grids - grids
    assert used_mlps <= mlps, used_mlps - mlps
    # a config may switch the grid to smoothstep interpolation: those kernels are checked too
    assert {(2, 2, "Smoothstep"), (3, 2, "Smoothstep")} <= grids
