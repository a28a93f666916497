"""The image field: 2D hash grid -> MLP -> linear RGB."""

from __future__ import annotations

from ngp_sdk.core.fields import GridMlpField

__all__ = ["ImageField"]


class ImageField(GridMlpField):
    """2D hash grid followed by an MLP with 3 outputs (linear RGB)."""

    n_dims = 2
    n_output_dims = 3
