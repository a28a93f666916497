"""Configuration of the SDF primitive (instant-ngp ``configs/sdf/base.json`` defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ngp_sdk.core.config import (
    AdamConfig,
    EmaConfig,
    GridMlpConfigJson,
    HashGridConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainingConfig,
    require,
    section_from_dict,
)
from ngp_sdk.core.errors import ConfigError

__all__ = ["EikonalConfig", "SdfConfig"]


@dataclass(frozen=True, kw_only=True)
class EikonalConfig:
    """Optional eikonal regulariser ``weight * mean (|grad f| - 1)^2`` with central-difference gradients.

    Off by default (instant-ngp trains its SDFs with the MAPE loss alone). Central differences amplify value
    errors by ``1 / (2 step)``, so useful weights are small next to MAPE: 0.01 keeps the fit intact on our test
    shapes, while 0.1 and above overpower the distance supervision (the surface degrades).

    Attributes:
        weight: loss weight; 0 disables the term.
        points_fraction: the regulariser runs on ``batch_size / points_fraction`` of the batch's off-surface
            points (each costs six extra field evaluations).
        step: central-difference step in the unit cube (1e-3 spans about two cells of the finest level).
    """

    weight: float = 0.0
    points_fraction: int = 16
    step: float = 1e-3

    def __post_init__(self) -> None:
        require(self.weight >= 0, f"eikonal.weight must be >= 0, got {self.weight}")
        require(self.points_fraction >= 2, f"eikonal.points_fraction must be >= 2, got {self.points_fraction}")
        require(0 < self.step < 0.1, f"eikonal.step must be in (0, 0.1), got {self.step}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "eikonal") -> EikonalConfig:
        return section_from_dict(cls, data, where)


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
        eikonal: the optional eikonal regulariser (JSON section ``"eikonal"``).
    """

    extra_sections: ClassVar[dict[str, Any]] = {"eikonal": EikonalConfig}

    encoding: HashGridConfig = field(default_factory=lambda: HashGridConfig(per_level_scale=1.38))
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(output_activation="None"))
    optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(adam=AdamConfig(learning_rate=1e-4, beta2=0.99, epsilon=1e-15),
                                                ema=EmaConfig(decay=0.95))
    )
    loss: LossConfig = field(default_factory=lambda: LossConfig(otype="MAPE"))
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eikonal: EikonalConfig = field(default_factory=EikonalConfig)

    def __post_init__(self) -> None:
        if self.training.batch_size % 8 != 0:
            raise ConfigError(f"training.batch_size must be a multiple of 8 for SDF sampling, "
                              f"got {self.training.batch_size}")
