"""Configuration of the SDF primitive (instant-ngp ``configs/sdf/base.json`` defaults)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .config import (
    AdamConfig,
    EmaConfig,
    HashGridConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainingConfig,
)
from .errors import ConfigError

__all__ = ["SdfConfig"]


@dataclass(frozen=True, kw_only=True)
class SdfConfig:
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

    @classmethod
    def from_dict(cls, data: Any) -> SdfConfig:
        """Build from a tcnn-style JSON object; missing sections keep their defaults.

        Raises:
            ConfigError: for a non-object, an unknown key or an invalid value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
        allowed = {"encoding", "network", "optimizer", "loss", "training"}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"config: unknown key {sorted(unknown)[0]!r}; valid keys: {', '.join(sorted(allowed))}")
        base = cls()
        return cls(
            encoding=HashGridConfig.from_dict(data["encoding"]) if "encoding" in data else base.encoding,
            network=NetworkConfig.from_dict(data["network"]) if "network" in data else base.network,
            optimizer=OptimizerConfig.from_dict(data["optimizer"]) if "optimizer" in data else base.optimizer,
            loss=LossConfig.from_dict(data["loss"]) if "loss" in data else base.loss,
            training=TrainingConfig.from_dict(data["training"]) if "training" in data else base.training,
        )

    def to_dict(self) -> dict[str, Any]:
        """The tcnn-style JSON object (inverse of :meth:`from_dict`)."""
        return {
            "encoding": dataclasses.asdict(self.encoding),
            "network": dataclasses.asdict(self.network),
            "optimizer": self.optimizer.to_dict(),
            "loss": dataclasses.asdict(self.loss),
            "training": dataclasses.asdict(self.training),
        }
