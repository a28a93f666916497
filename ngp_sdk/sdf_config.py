"""Configuration of the SDF primitive (instant-ngp ``configs/sdf/base.json`` defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import (
    AdamConfig,
    EmaConfig,
    GridMlpConfigJson,
    HashGridConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainingConfig,
)
from .errors import ConfigError

__all__ = ["SdfConfig"]


@dataclass(frozen=True, kw_only=True)
class SdfConfig(GridMlpConfigJson):
    """Signed-distance primitive: 3D hash grid + MLP -> one signed distance.

    Defaults follow instant-ngp's SDF config: hash grid L16 F2 T2^19 N_min 16 with ``per_level_scale`` 1.38
    (finest level ~2000 cells), MLP 64x2 with one linear output, MAPE loss, Adam (lr 1e-4, beta2 0.99,
    eps 1e-15) wrapped in an Ema (0.95), batches of 2^16 points.

    Attributes:
        encoding: hash-grid encoding.
        network: MLP (its output width is always 1).
        optimizer: optimizer chain.
        loss: loss (``MAPE`` by default).
        training: batch size (a multiple of 8) and seed.
    """

    encoding: HashGridConfig = field(default_factory=lambda: HashGridConfig(per_level_scale=1.38))
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(output_activation="None"))
    optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(adam=AdamConfig(learning_rate=1e-4, beta2=0.99, epsilon=1e-15),
                                                ema=EmaConfig(decay=0.95))
    )
    loss: LossConfig = field(default_factory=lambda: LossConfig(otype="MAPE"))
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.training.batch_size % 8 != 0:
            raise ConfigError(f"training.batch_size must be a multiple of 8 for SDF sampling, "
                              f"got {self.training.batch_size}")
