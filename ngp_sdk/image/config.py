"""Configuration of the gigapixel-image primitive (instant-ngp ``configs/image/base.json`` vocabulary)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ngp_sdk.core.config import (
    ExponentialDecayConfig,
    GridMlpConfigJson,
    HashGridConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainingConfig,
)

__all__ = ["ImageConfig"]


@dataclass(frozen=True, kw_only=True)
class ImageConfig(GridMlpConfigJson):
    """Gigapixel-image primitive: 2D hash grid + MLP -> RGB.

    Defaults are instant-ngp's ``configs/image/base.json`` (L2 loss, Adam 1e-2 in an ExponentialDecay, hash grid
    L16 F2 N_min 16, MLP 64x2) with a 2^19-entry table instead of 2^24 and ``per_level_scale`` 1.5 instead of
    2.0 (finest level ~7000 cells instead of ~500k): on the 1024^2 test photo it reaches a higher PSNR in the
    same time and trains ~25% faster on CPU, because the finest levels stay more cache-coherent.
    """

    encoding: HashGridConfig = field(default_factory=lambda: HashGridConfig(per_level_scale=1.5))
    network: NetworkConfig = field(default_factory=NetworkConfig)
    optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(
            decay=ExponentialDecayConfig(decay_start=20000, decay_interval=10000, decay_base=0.33)
        )
    )
    loss: LossConfig = field(default_factory=lambda: LossConfig(otype="L2"))
    training: TrainingConfig = field(default_factory=TrainingConfig)
