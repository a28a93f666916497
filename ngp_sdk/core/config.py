"""Configuration building blocks: frozen dataclasses per component, read from and written to tcnn / instant-ngp JSON.

Each primitive composes these sections into its own config (``ngp_sdk.image.config.ImageConfig``,
``ngp_sdk.nerf.config.NerfConfig``, ``ngp_sdk.sdf.config.SdfConfig``); this module knows none of them.

The JSON vocabulary is tiny-cuda-nn's (``otype`` keys, ``n_levels``, ``log2_hashmap_size``...), so an
instant-ngp ``configs/image/base.json`` loads as is::

    {"encoding": {"otype": "HashGrid", "n_levels": 16, ...},
     "network": {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2, ...},
     "optimizer": {"otype": "Ema", "decay": 0.95, "nested": {"otype": "ExponentialDecay", ...,
                   "nested": {"otype": "Adam", "learning_rate": 1e-2, ...}}},
     "loss": {"otype": "RelativeL2"}}

Unknown keys, wrong types and out-of-range values raise :class:`~ngp_sdk.core.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ngp_sdk.core.errors import ConfigError
from warp_kernels.hash_encoding import HashGridLayout
from warp_kernels.losses import LOSS_NAMES
from warp_kernels.mlp import MlpLayout

__all__ = [
    "HashGridConfig",
    "NetworkConfig",
    "AdamConfig",
    "EmaConfig",
    "ExponentialDecayConfig",
    "OptimizerConfig",
    "LossConfig",
    "TrainingConfig",
    "GridMlpConfigJson",
    "section_from_dict",
    "require",
    "load_config_file",
    "config_from",
    "strip_json_comments",
]

T = TypeVar("T")

_HIDDEN_ACTIVATIONS = ("ReLU",)
_OUTPUT_ACTIVATIONS = {"None": "none", "Sigmoid": "sigmoid", "Exponential": "exp", "ReLU": "relu"}


def section_from_dict(cls: type[T], data: Any, where: str, *, skip: tuple[str, ...] = ()) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and coercing numbers."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(value, known[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: {e}") from None


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    return value


def require(cond: bool, msg: str) -> None:
    """Raise :class:`ConfigError` with ``msg`` unless ``cond`` (the validation idiom of every config section)."""
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True, kw_only=True)
class HashGridConfig:
    """tcnn ``HashGrid`` encoding."""

    otype: str = "HashGrid"
    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 2.0
    interpolation: str = "Linear"

    def __post_init__(self) -> None:
        require(self.otype in ("HashGrid", "Grid"), f"encoding.otype must be 'HashGrid', got {self.otype!r}")
        try:
            self.layout(3)
        except ValueError as e:
            raise ConfigError(f"encoding: {e}") from None

    def layout(self, n_dims: int) -> HashGridLayout:
        """The kernel-level layout for ``n_dims``-dimensional inputs."""
        return HashGridLayout(
            n_dims=n_dims,
            n_levels=self.n_levels,
            n_features_per_level=self.n_features_per_level,
            log2_hashmap_size=self.log2_hashmap_size,
            base_resolution=self.base_resolution,
            per_level_scale=self.per_level_scale,
            interpolation=self.interpolation,
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "encoding") -> HashGridConfig:
        return section_from_dict(cls, data, where)


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """tcnn ``FullyFusedMLP`` / ``CutlassMLP`` network (no biases; ReLU hidden)."""

    otype: str = "FullyFusedMLP"
    activation: str = "ReLU"
    output_activation: str = "None"
    n_neurons: int = 64
    n_hidden_layers: int = 2

    def __post_init__(self) -> None:
        require(self.otype in ("FullyFusedMLP", "CutlassMLP", "MLP"),
                f"network.otype must be FullyFusedMLP, CutlassMLP or MLP, got {self.otype!r}")
        require(self.activation in _HIDDEN_ACTIVATIONS, f"network.activation must be ReLU, got {self.activation!r}")
        require(self.output_activation in _OUTPUT_ACTIVATIONS,
                f"network.output_activation must be one of {', '.join(_OUTPUT_ACTIVATIONS)}, "
                f"got {self.output_activation!r}")
        require(self.n_neurons in (16, 32, 64, 128),
                f"network.n_neurons must be 16, 32, 64 or 128, got {self.n_neurons}")
        require(0 <= self.n_hidden_layers <= 16,
                f"network.n_hidden_layers must be in 0..16, got {self.n_hidden_layers}")

    def layout(self, n_input: int, n_output: int) -> MlpLayout:
        """The kernel-level layout for the given input/output widths."""
        return MlpLayout(
            n_input=n_input,
            n_output=n_output,
            n_neurons=self.n_neurons,
            n_hidden_layers=self.n_hidden_layers,
            output_activation=_OUTPUT_ACTIVATIONS[self.output_activation],
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "network") -> NetworkConfig:
        return section_from_dict(cls, data, where)


@dataclass(frozen=True, kw_only=True)
class AdamConfig:
    """tcnn ``Adam``: instant-ngp's defaults (beta2 0.99, eps 1e-15, L2 1e-6 on MLP weights only)."""

    otype: str = "Adam"
    learning_rate: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.99
    epsilon: float = 1e-15
    l2_reg: float = 1e-6

    def __post_init__(self) -> None:
        require(self.otype == "Adam", f"optimizer: innermost otype must be 'Adam', got {self.otype!r}")
        require(self.learning_rate > 0, f"optimizer.learning_rate must be > 0, got {self.learning_rate}")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "optimizer.beta1/beta2 must be in [0, 1)")
        require(self.epsilon >= 0 and self.l2_reg >= 0, "optimizer.epsilon and l2_reg must be >= 0")


@dataclass(frozen=True, kw_only=True)
class EmaConfig:
    """tcnn ``Ema`` wrapper: an exponential moving average of the parameters used for inference."""

    otype: str = "Ema"
    decay: float = 0.95

    def __post_init__(self) -> None:
        require(0 <= self.decay < 1, f"optimizer.decay (Ema) must be in [0, 1), got {self.decay}")


@dataclass(frozen=True, kw_only=True)
class ExponentialDecayConfig:
    """tcnn ``ExponentialDecay`` wrapper: ``lr *= decay_base`` every ``decay_interval`` steps after the start."""

    otype: str = "ExponentialDecay"
    decay_start: int = 10000
    decay_interval: int = 10000
    decay_base: float = 0.33

    def __post_init__(self) -> None:
        require(self.decay_interval > 0, "optimizer.decay_interval must be > 0")
        require(0 < self.decay_base <= 1, "optimizer.decay_base must be in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """The optimizer chain ``[Ema ->] [ExponentialDecay ->] Adam``, flattened."""

    adam: AdamConfig = field(default_factory=AdamConfig)
    ema: EmaConfig | None = None
    decay: ExponentialDecayConfig | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "optimizer") -> OptimizerConfig:
        ema = decay = None
        node = data
        while True:
            if not isinstance(node, dict) or "otype" not in node:
                raise ConfigError(f"{where}: expected an object with an 'otype' key")
            otype = node["otype"]
            if otype == "Ema":
                ema = section_from_dict(EmaConfig, node, where, skip=("nested",))
            elif otype == "ExponentialDecay":
                decay = section_from_dict(ExponentialDecayConfig, node, where, skip=("nested",))
            elif otype == "Adam":
                return cls(adam=section_from_dict(AdamConfig, node, where), ema=ema, decay=decay)
            else:
                raise ConfigError(f"{where}: unsupported otype {otype!r}; use Adam, optionally nested in "
                                  "ExponentialDecay and/or Ema")
            if "nested" not in node:
                raise ConfigError(f"{where}: {otype} needs a 'nested' optimizer")
            node = node["nested"]
            where = f"{where}.nested"

    def to_dict(self) -> dict[str, Any]:
        node: dict[str, Any] = dataclasses.asdict(self.adam)
        if self.decay is not None:
            node = {**dataclasses.asdict(self.decay), "nested": node}
        if self.ema is not None:
            node = {**dataclasses.asdict(self.ema), "nested": node}
        return node


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """tcnn loss: ``L2``, ``L1``, ``Huber``, ``RelativeL2`` or ``MAPE``."""

    otype: str = "RelativeL2"

    def __post_init__(self) -> None:
        require(self.otype in LOSS_NAMES, f"loss.otype must be one of {', '.join(LOSS_NAMES)}, got {self.otype!r}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "loss") -> LossConfig:
        return section_from_dict(cls, data, where)


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Batch and seeding (instant-ngp keeps these outside the network JSON)."""

    batch_size: int = 1 << 16
    seed: int = 1337

    def __post_init__(self) -> None:
        require(256 <= self.batch_size <= 1 << 24, f"training.batch_size must be in 256..2^24, got {self.batch_size}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "training") -> TrainingConfig:
        return section_from_dict(cls, data, where)


class GridMlpConfigJson:
    """JSON round trip of configs made of ``encoding``/``network``/``optimizer``/``loss``/``training`` sections.

    Mixed into frozen dataclasses with exactly those fields (plus the sections named in ``extra_sections``:
    JSON key -> section class with ``from_dict``); a missing section keeps the class default.
    """

    extra_sections: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_dict(cls, data: Any):
        """Build from a tcnn-style JSON object.

        Raises:
            ConfigError: for a non-object, an unknown key or an invalid value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
        allowed = {"encoding", "network", "optimizer", "loss", "training", *cls.extra_sections}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"config: unknown key {sorted(unknown)[0]!r}; valid keys: {', '.join(sorted(allowed))}")
        base = cls()
        extra = {k: section.from_dict(data[k]) if k in data else getattr(base, k)
                 for k, section in cls.extra_sections.items()}
        return cls(
            encoding=HashGridConfig.from_dict(data["encoding"]) if "encoding" in data else base.encoding,
            network=NetworkConfig.from_dict(data["network"]) if "network" in data else base.network,
            optimizer=OptimizerConfig.from_dict(data["optimizer"]) if "optimizer" in data else base.optimizer,
            loss=LossConfig.from_dict(data["loss"]) if "loss" in data else base.loss,
            training=TrainingConfig.from_dict(data["training"]) if "training" in data else base.training,
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """The tcnn-style JSON object (inverse of :meth:`from_dict`)."""
        return {
            "encoding": dataclasses.asdict(self.encoding),
            "network": dataclasses.asdict(self.network),
            "optimizer": self.optimizer.to_dict(),
            "loss": dataclasses.asdict(self.loss),
            "training": dataclasses.asdict(self.training),
            **{k: dataclasses.asdict(getattr(self, k)) for k in self.extra_sections},
        }


def strip_json_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments outside strings (instant-ngp's configs use them)."""
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file (comments allowed) into a dict, with a clear error if missing or malformed."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
    try:
        data = json.loads(strip_json_comments(text))
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {p}: expected a JSON object at the top level")
    return data


#: Where the configs shipped with the SDK live (``<primitive>/<name>.json``).
BUNDLED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def bundled_configs(primitive: str) -> dict[str, Path]:
    """Names -> paths of the configs shipped for ``primitive`` (e.g. ``{"base": ..., "gigapixel": ...}``)."""
    return {p.stem: p for p in sorted((BUNDLED_CONFIGS / primitive).glob("*.json"))}


def config_from(cls: type[T], config: Any, *, primitive: str | None = None) -> T:
    """A ``cls`` config from itself, a dict, a JSON path (comments allowed), the name of a config bundled for
    ``primitive`` (``"gigapixel"`` -> ``ngp_sdk/configs/image/gigapixel.json``) or None (the defaults).

    Raises:
        ConfigError: for any other type, an unreadable file or an invalid config.
    """
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, dict):
        return cls.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        named = bundled_configs(primitive).get(str(config)) if primitive else None
        if named is not None and not Path(config).exists():
            config = named
        return cls.from_dict(load_config_file(config))
    raise ConfigError(f"config must be a {cls.__name__}, a dict or a JSON path, got {type(config).__name__}")
