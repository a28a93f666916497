"""Configuration of the neural radiance cache (tcnn vocabulary, plus an ``nrc`` section for the path settings)."""

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

__all__ = ["CachePathConfig", "NrcConfig"]


@dataclass(frozen=True, kw_only=True)
class CachePathConfig:
    """How paths use and train the cache (the NRC paper's settings where it gives them).

    Attributes:
        spread_c: a path ends in the cache once its area spread exceeds ``spread_c`` x the primary vertex's (0.01).
        train_stride: every ``train_stride``-th pixel of a frame also traces a training path.
        unbiased_every: every n-th training path ignores the cache at its end (unbiased targets).
        max_train_vertices: records kept per training path.
        steps_per_frame: optimiser steps per frame, each on ``training.batch_size`` records (fewer when the
            frame produced fewer).
    """

    spread_c: float = 0.01
    train_stride: int = 16
    unbiased_every: int = 16
    max_train_vertices: int = 12
    steps_per_frame: int = 4

    def __post_init__(self) -> None:
        require(self.spread_c > 0, f"nrc.spread_c must be > 0, got {self.spread_c}")
        require(self.train_stride >= 1, f"nrc.train_stride must be >= 1, got {self.train_stride}")
        require(self.unbiased_every >= 0, f"nrc.unbiased_every must be >= 0, got {self.unbiased_every}")
        require(1 <= self.max_train_vertices <= 64, "nrc.max_train_vertices must be in [1, 64]")
        require(self.steps_per_frame >= 0, f"nrc.steps_per_frame must be >= 0, got {self.steps_per_frame}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "nrc") -> CachePathConfig:
        return section_from_dict(cls, data, where)


@dataclass(frozen=True, kw_only=True)
class NrcConfig(GridMlpConfigJson):
    """Neural radiance cache: 3D hash grid (position) + SH (direction, normal) + material -> MLP -> RGB.

    Defaults: hash grid L16 F2 T2^16 N_min 16 per-level scale 1.5 over the scene's box; MLP 64x2; relative L2
    loss; Adam (lr 1e-2, beta2 0.99, eps 1e-15) with an EMA (0.99) of the weights for inference, as the paper
    trains online; 2^14 records per step. On the CPU the cache's cost per frame decides everything: at 128^2
    T=2^19 with a 64x3 MLP costs 177 ms per frame against 106 ms for these defaults, for a relative MSE only 7%
    lower (benchmarks/RESULTS.md, "Neural radiance caching").
    """

    extra_sections: ClassVar[dict[str, Any]] = {"nrc": CachePathConfig}

    encoding: HashGridConfig = field(default_factory=lambda: HashGridConfig(log2_hashmap_size=16,
                                                                              per_level_scale=1.5))
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(n_neurons=64, n_hidden_layers=2))
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(
        adam=AdamConfig(learning_rate=1e-2), ema=EmaConfig(decay=0.99)))
    loss: LossConfig = field(default_factory=lambda: LossConfig(otype="RelativeL2"))
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(batch_size=1 << 14))
    nrc: CachePathConfig = field(default_factory=CachePathConfig)
