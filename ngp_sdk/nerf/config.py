"""Configuration of the NeRF primitive (instant-ngp's paper-era ``configs/nerf/base.json`` and testbed settings)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ngp_sdk.core.config import (
    EmaConfig,
    ExponentialDecayConfig,
    HashGridConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    require,
    section_from_dict,
)
from ngp_sdk.core.errors import ConfigError

__all__ = ["DirEncodingConfig", "NerfTrainingConfig", "NerfConfig", "nerf_per_level_scale"]


def nerf_per_level_scale(desired_resolution: float, base_resolution: int, n_levels: int) -> float:
    """instant-ngp's growth factor ``b = exp(log(desired / base) / (L - 1))`` (1 for a single level)."""
    if n_levels <= 1 or desired_resolution <= base_resolution:
        return 1.0
    return math.exp(math.log(desired_resolution / base_resolution) / (n_levels - 1))


@dataclass(frozen=True, kw_only=True)
class DirEncodingConfig:
    """tcnn ``SphericalHarmonics`` direction encoding (degree 4 = 16 outputs; the only supported degree)."""

    otype: str = "SphericalHarmonics"
    degree: int = 4

    def __post_init__(self) -> None:
        require(self.otype == "SphericalHarmonics",
                f"dir_encoding.otype must be 'SphericalHarmonics', got {self.otype!r}")
        require(self.degree == 4, f"dir_encoding.degree must be 4, got {self.degree}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "dir_encoding") -> DirEncodingConfig:
        return section_from_dict(cls, data, where)


@dataclass(frozen=True, kw_only=True)
class NerfTrainingConfig:
    """NeRF training and occupancy-grid settings (instant-ngp keeps these in the testbed, not the JSON).

    Attributes:
        target_samples: network samples per step the ray count adapts to (instant-ngp: 2^18; 2^16 gives a
            better time-to-quality on a CPU).
        initial_rays: rays of the first batch (instant-ngp: 2^12).
        max_rays: upper bound of rays per batch.
        desired_resolution: finest hash-grid resolution per unit of ``aabb_scale`` (instant-ngp: 2048); the
            task sets ``encoding.per_level_scale`` from it and the dataset's ``aabb_scale``, then stores 0 here
            (0 = use ``encoding.per_level_scale`` as given).
        huber_delta: ``delta`` of the Huber loss on colour.
        random_background: composite every training ray over a random colour (instant-ngp); False = black.
        min_transmittance: early-termination threshold of compositing (instant-ngp: 1e-4).
        max_samples_per_ray: marching cap per ray (instant-ngp NERF_STEPS: 1024).
        grid_update_interval: steps between occupancy-grid updates (instant-ngp: 16 once past step 256).
        grid_warmup_steps: updates before this step visit every cell (instant-ngp: 256; 64 here: an all-cell
            update costs about a second on a 2-core CPU).
        grid_update_fraction: after warm-up, uniform and occupied-biased samples per update, each as a fraction
            of the cells (instant-ngp: 1/4; 1/16 here, which trains lego as well in 90 s at 20% more samples
            per second on a 2-core CPU).
        grid_decay: decay of the grid per update (instant-ngp: 0.95).
        mark_untrained: exclude grid cells no training camera sees (instant-ngp's ``mark_untrained_density_grid``);
            removes floaters outside the views.
        seed: RNG seed of initialisation and sampling.
        optimize_extrinsics: learn a pose correction (rotation about the camera centre + translation) per
            training camera, jointly with the field (instant-ngp's extrinsic optimisation; a live task refines
            the frames added with ``refine_pose=True`` whatever this says).
        extrinsic_learning_rate: Adam step of the pose corrections (radians / internal units per update).
        extrinsic_decay_updates: the pose step falls tenfold every this many updates (exponentially, as BARF's
            pose learning rate): large steps while poses are far off, small ones to settle; 0 = constant.
        extrinsic_l2_reg: pull of the corrections towards the given poses (instant-ngp: 1e-4).
        extrinsic_update_interval: training steps whose camera gradients one pose update sums.
        extrinsic_start_step: first step that refines poses (the field first learns a rough scene).
        extrinsic_gradient_levels: hash-grid levels (coarsest first) the pose gradient flows through; 0 = all.
            The fine levels' gradients are high-frequency noise at the scale of a pose error (BARF's
            coarse-to-fine argument), and skipping them halves the cost.
        extrinsic_pivot: what a camera's rotation correction turns about: ``"scene"`` (the NeRF origin, the usual
            orbit centre, so a rotation orbits the scene) or ``"camera"`` (its own centre, instant-ngp).
        extrinsic_local_axes: corrections in each camera's own axes instead of world axes.
        coarse_to_fine_steps: while poses are refined, the field's hash-grid levels are enabled progressively
            over this many steps (BARF's coarse-to-fine weights ``(1 - cos(pi * clamp(alpha - l, 0, 1))) / 2``,
            ``alpha`` rising linearly from ``coarse_to_fine_start_levels`` to ``n_levels``), so the field cannot
            absorb a pose error in its fine levels before the poses settle; 0 = every level from the start.
        coarse_to_fine_start_levels: levels fully enabled at step 0 of that schedule.
        optimize_focal_length: also learn one focal-length factor shared by every training camera (offline
            tasks; instant-ngp's ``optimize_focal_length``).
        intrinsic_learning_rate: Adam step of the focal length's log-scale.
        depth_supervision_lambda: weight of the L1 loss on rendered depth where a frame has depth
            (instant-ngp's name); 0 disables it.
    """

    target_samples: int = 1 << 16
    initial_rays: int = 1 << 12
    max_rays: int = 1 << 18
    desired_resolution: int = 2048
    huber_delta: float = 0.1
    random_background: bool = True
    min_transmittance: float = 1e-4
    max_samples_per_ray: int = 1024
    grid_update_interval: int = 16
    grid_warmup_steps: int = 64
    grid_update_fraction: float = 0.0625
    grid_decay: float = 0.95
    mark_untrained: bool = True
    seed: int = 1337
    optimize_extrinsics: bool = False
    extrinsic_learning_rate: float = 1e-3
    extrinsic_l2_reg: float = 1e-4
    extrinsic_update_interval: int = 1
    extrinsic_decay_updates: int = 2000
    extrinsic_start_step: int = 0
    extrinsic_gradient_levels: int = 8
    extrinsic_pivot: str = "scene"
    extrinsic_local_axes: bool = False
    coarse_to_fine_steps: int = 0
    coarse_to_fine_start_levels: float = 4.0
    optimize_focal_length: bool = False
    intrinsic_learning_rate: float = 1e-3
    depth_supervision_lambda: float = 0.0

    def __post_init__(self) -> None:
        require(1024 <= self.target_samples <= 1 << 24, f"training.target_samples must be in 1024..2^24, "
                f"got {self.target_samples}")
        require(256 <= self.initial_rays <= self.max_rays <= 1 << 22,
                "training: need 256 <= initial_rays <= max_rays <= 2^22")
        require(self.desired_resolution >= 0, "training.desired_resolution must be >= 0")
        require(self.huber_delta > 0, f"training.huber_delta must be > 0, got {self.huber_delta}")
        require(0 <= self.min_transmittance < 1, "training.min_transmittance must be in [0, 1)")
        require(1 <= self.max_samples_per_ray <= 1 << 14, "training.max_samples_per_ray must be in 1..16384")
        require(self.max_samples_per_ray <= self.target_samples,
                "training.max_samples_per_ray must not exceed target_samples")
        require(self.grid_update_interval >= 1, "training.grid_update_interval must be >= 1")
        require(self.grid_warmup_steps >= 0, "training.grid_warmup_steps must be >= 0")
        require(0 < self.grid_update_fraction <= 1, "training.grid_update_fraction must be in (0, 1]")
        require(0 <= self.grid_decay <= 1, "training.grid_decay must be in [0, 1]")
        require(self.extrinsic_learning_rate > 0, "training.extrinsic_learning_rate must be > 0")
        require(self.extrinsic_l2_reg >= 0, "training.extrinsic_l2_reg must be >= 0")
        require(self.extrinsic_pivot in ("scene", "camera"),
                f"training.extrinsic_pivot must be 'scene' or 'camera', got {self.extrinsic_pivot!r}")
        require(self.coarse_to_fine_steps >= 0, "training.coarse_to_fine_steps must be >= 0")
        require(self.coarse_to_fine_start_levels >= 0, "training.coarse_to_fine_start_levels must be >= 0")
        require(self.extrinsic_update_interval >= 1, "training.extrinsic_update_interval must be >= 1")
        require(self.extrinsic_decay_updates >= 0, "training.extrinsic_decay_updates must be >= 0")
        require(self.extrinsic_start_step >= 0, "training.extrinsic_start_step must be >= 0")
        require(self.extrinsic_gradient_levels >= 0, "training.extrinsic_gradient_levels must be >= 0")
        require(self.intrinsic_learning_rate > 0, "training.intrinsic_learning_rate must be > 0")
        require(self.depth_supervision_lambda >= 0, "training.depth_supervision_lambda must be >= 0")

    @classmethod
    def from_dict(cls, data: Any, where: str = "training") -> NerfTrainingConfig:
        return section_from_dict(cls, data, where)


def _nerf_optimizer() -> OptimizerConfig:
    return OptimizerConfig(ema=EmaConfig(decay=0.95),
                           decay=ExponentialDecayConfig(decay_start=20000, decay_interval=10000, decay_base=0.33))


@dataclass(frozen=True, kw_only=True)
class NerfConfig:
    """Neural radiance field: 3D hash grid -> density MLP (16 outputs) ; SH(direction) -> colour MLP -> RGB.

    Defaults are instant-ngp's paper-era ``configs/nerf/base.json``: hash grid L16 F2 T=2^19 N_min 16 (the
    finest resolution 2048 * aabb_scale sets ``per_level_scale``); density MLP 64 wide, 1 hidden layer, 16
    outputs whose channel 0 is log-density (density = exp, applied by the field); SH degree 4; colour MLP 64
    wide, 2 hidden layers, sigmoid RGB; Huber loss (delta 0.1); Adam 1e-2 (0.9, 0.99, 1e-15) with an EMA of
    0.95 and instant-ngp's ExponentialDecay (from step 20000).
    """

    encoding: HashGridConfig = field(
        default_factory=lambda: HashGridConfig(per_level_scale=nerf_per_level_scale(2048, 16, 16))
    )
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(n_hidden_layers=1))
    dir_encoding: DirEncodingConfig = field(default_factory=DirEncodingConfig)
    rgb_network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(n_hidden_layers=2, output_activation="Sigmoid")
    )
    optimizer: OptimizerConfig = field(default_factory=_nerf_optimizer)
    loss: LossConfig = field(default_factory=lambda: LossConfig(otype="Huber"))
    training: NerfTrainingConfig = field(default_factory=NerfTrainingConfig)

    _SECTIONS = ("encoding", "network", "dir_encoding", "rgb_network", "optimizer", "loss", "training")

    def __post_init__(self) -> None:
        require(self.network.output_activation == "None",
                "network.output_activation must be 'None' for NeRF (the field applies exp to the density itself)")

    def resolved(self, aabb_scale: float) -> NerfConfig:
        """This config with ``per_level_scale`` set for a scene of ``aabb_scale`` (if ``desired_resolution``)."""
        t = self.training
        if t.desired_resolution == 0:
            return self
        enc = self.encoding
        b = nerf_per_level_scale(t.desired_resolution * float(aabb_scale), enc.base_resolution, enc.n_levels)
        return dataclasses.replace(self, encoding=dataclasses.replace(enc, per_level_scale=b),
                                   training=dataclasses.replace(t, desired_resolution=0))

    @classmethod
    def from_dict(cls, data: Any) -> NerfConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(cls._SECTIONS)
        if unknown:
            raise ConfigError(f"config: unknown key {sorted(unknown)[0]!r}; valid keys: "
                              f"{', '.join(sorted(cls._SECTIONS))}")
        base = cls()
        parsers = {"encoding": HashGridConfig.from_dict, "network": NetworkConfig.from_dict,
                   "dir_encoding": DirEncodingConfig.from_dict, "rgb_network": NetworkConfig.from_dict,
                   "optimizer": OptimizerConfig.from_dict, "loss": LossConfig.from_dict,
                   "training": NerfTrainingConfig.from_dict}
        kwargs = {k: parsers[k](data[k], k) if k in data else getattr(base, k) for k in cls._SECTIONS}
        enc, tr = data.get("encoding"), data.get("training")
        if isinstance(enc, dict) and "per_level_scale" in enc and not (isinstance(tr, dict)
                                                                       and "desired_resolution" in tr):
            # an explicit per_level_scale wins over instant-ngp's automatic one
            kwargs["training"] = dataclasses.replace(kwargs["training"], desired_resolution=0)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = {k: dataclasses.asdict(getattr(self, k)) for k in self._SECTIONS if k != "optimizer"}
        out["optimizer"] = self.optimizer.to_dict()
        return {k: out[k] for k in self._SECTIONS}
