"""Ahead-of-time CUDA compile check of every Warp kernel module, without a GPU (NVRTC ships in the Warp wheel).

Usage::

    python -m warp_kernels.cuda_check [--arch 80 90] [--tile-arch 90] [--cache-dir DIR] [--no-cache] [--json]

What is compiled:

- every Warp module holding a ``wp.Kernel`` defined at module level in a submodule of :mod:`warp_kernels`
  (found with :mod:`pkgutil`, so new or renamed modules are picked up without changes here);
- the factory-made kernels of the configurations in :func:`default_variants` (and of any extra
  :class:`Variant` passed to :func:`check`), through the public accessors of the kernel modules:
  :func:`warp_kernels.hash_encoding.encoding_kernels`, :func:`warp_kernels.image_sampling.bilinear_kernel` and
  :func:`warp_kernels.mlp_tile.tile_kernels`.

Generic kernels compile through their concrete overloads (``wp.overload``); a generic kernel without one cannot
be compiled ahead of time and is reported as a failure rather than skipped. Tile modules (the MLP tile kernels,
or any module whose kernels call ``wp.tile_*``) compile for ``tile_archs`` only: their cuBLASDx GEMMs make them
slow to build (minutes per module); everything else compiles for every arch in ``archs``.

Each (module, arch) compiles into a fresh temporary directory (never Warp's kernel cache; Warp's cache of
cuBLASDx LTO objects, keyed by GEMM shape and arch, is reused unless ``fresh_warp_cache``). A success leaves a
marker file under ``cache_dir`` keyed by the module's content hash as Warp computes it (which covers the
module's code, dependencies and compile options), the arch, the output format and the Warp version, so an
unchanged module is skipped on the next run. Compiles run in worker processes (two by default): Warp serialises
its Python codegen under a global lock, so threads would not overlap the tile modules' long codegen.

This module never imports :mod:`ngp_sdk`; the SDK can pass its own configurations as :class:`Variant`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import hashlib
import importlib
import json
import multiprocessing
import os
import pkgutil
import shutil
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import warp as wp

from .hash_encoding import HashGridLayout, encoding_kernels
from .image_sampling import IMAGE_DTYPES, bilinear_kernel
from .mlp import MlpLayout
from .mlp_tile import tile_kernels

__all__ = [
    "DEFAULT_ARCHS",
    "DEFAULT_TILE_ARCHS",
    "CheckReport",
    "JobResult",
    "Target",
    "Variant",
    "check",
    "collect_targets",
    "default_cache_dir",
    "default_variants",
    "discover_modules",
    "main",
    "nvrtc_archs",
]

#: Architectures every non-tile module is compiled for (A100 and H100/H200).
DEFAULT_ARCHS = (80, 90)
#: Architectures the tile modules are compiled for.
DEFAULT_TILE_ARCHS = (90,)

_PACKAGE = "warp_kernels"
_SELF = f"{_PACKAGE}.cuda_check"
_MAX_MESSAGE = 6000


# --------------------------------------------------------------------------------------------------------------
# What to compile


@dataclass(frozen=True)
class Variant:
    """A configuration whose factory-made kernels must compile.

    Attributes:
        name: label shown in the report.
        hash_grids: hash-grid layouts (their kernels depend on ``n_dims``, ``n_features_per_level`` and
            ``interpolation`` only).
        mlps: MLP layouts run by the tile back end on CUDA (kernels depend on ``n_input``, ``n_output`` and
            ``n_neurons``, or ``(n_input, n_output)`` without hidden layers; depth and activation are runtime).
        image_dtypes: texel dtypes of :func:`warp_kernels.image_sampling.sample_image_bilinear`, as names
            (``"uint8"``) or Warp types (``wp.uint8``).
    """

    name: str
    hash_grids: tuple[HashGridLayout, ...] = ()
    mlps: tuple[MlpLayout, ...] = ()
    image_dtypes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash_grids", tuple(self.hash_grids))
        object.__setattr__(self, "mlps", tuple(self.mlps))
        names = tuple(d if isinstance(d, str) else d.__name__ for d in self.image_dtypes)
        known = {t.__name__ for t in IMAGE_DTYPES}
        for d in names:
            if d not in known:
                raise ValueError(f"Variant {self.name!r}: image dtype must be one of {sorted(known)}, got {d!r}")
        object.__setattr__(self, "image_dtypes", names)
        for g in self.hash_grids:
            if not isinstance(g, HashGridLayout):
                raise TypeError(f"Variant {self.name!r}: hash_grids holds a {type(g).__name__}, not a HashGridLayout")
        for m in self.mlps:
            if not isinstance(m, MlpLayout):
                raise TypeError(f"Variant {self.name!r}: mlps holds a {type(m).__name__}, not an MlpLayout")


def default_variants() -> list[Variant]:
    """The layouts the SDK's tasks use by default, plus the hash-grid interpolation any config can select.

    Mirrors (without importing: kernels never import the SDK) the default configs of ``ngp_sdk.image.config``,
    ``ngp_sdk.nerf.config`` and ``ngp_sdk.sdf.config`` and the fields built from them;
    ``tests/ngp_sdk/core/test_cuda_variants.py`` checks that the two agree:

    - image: 2D hash grid L16 F2 (T 2^19, N_min 16, scale 1.5) -> MLP 32 -> 3 (RGB), 64 wide, 2 hidden layers,
      no output activation; images are uint8 (sRGB codes), float16 or float32 (``ngp_sdk.image.data``);
    - NeRF: 3D grid L16 F2 -> density MLP 32 -> 16, 64 wide, 1 hidden layer; colour MLP (16 density outputs +
      16 SH degree-4 coefficients =) 32 -> 3, 64 wide, 2 hidden layers, sigmoid;
    - SDF: 3D grid L16 F2 (scale 1.38) -> MLP 32 -> 1, 64 wide, 2 hidden layers;
    - NRC: 3D grid L16 F2 (T 2^16, scale 1.5) -> MLP (32 grid features + 2 x 16 SH coefficients + 7 material
      values =) 71 -> 3, 64 wide, 2 hidden layers (``ngp_sdk.nrc.cache``).

    ``MlpLayout`` pads nothing: the grid's ``n_levels * n_features_per_level`` = 32 is the MLP input as is
    (batches are padded to ``TILE_M`` rows inside the tile kernels, which does not change the kernels).
    ``HashGridConfig.interpolation`` may be ``"Smoothstep"`` in any task's config, which builds other hash-grid
    kernels, so the smoothstep variants of the 2D and 3D grids are checked too.
    """
    grid = {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19, "base_resolution": 16}
    image_grid = HashGridLayout(n_dims=2, per_level_scale=1.5, **grid)
    # NeRF's per_level_scale follows the scene's aabb_scale (2048 * aabb_scale finest cells); it is a runtime
    # value of the kernels, as is SDF's 1.38
    nerf_grid = HashGridLayout(n_dims=3, per_level_scale=1.3819, **grid)
    sdf_grid = HashGridLayout(n_dims=3, per_level_scale=1.38, **grid)
    encoded = grid["n_levels"] * grid["n_features_per_level"]
    return [
        Variant(
            "image",
            hash_grids=(image_grid,),
            mlps=(MlpLayout(n_input=encoded, n_output=3, n_neurons=64, n_hidden_layers=2),),
            image_dtypes=("uint8", "uint16", "float16", "float32"),
        ),
        Variant(
            "nerf",
            hash_grids=(nerf_grid,),
            mlps=(
                MlpLayout(n_input=encoded, n_output=16, n_neurons=64, n_hidden_layers=1),
                MlpLayout(n_input=16 + 16, n_output=3, n_neurons=64, n_hidden_layers=2, output_activation="sigmoid"),
            ),
        ),
        Variant(
            "sdf",
            hash_grids=(sdf_grid,),
            mlps=(MlpLayout(n_input=encoded, n_output=1, n_neurons=64, n_hidden_layers=2),),
        ),
        Variant(
            "nrc",
            hash_grids=(HashGridLayout(n_dims=3, per_level_scale=1.5, **{**grid, "log2_hashmap_size": 16}),),
            mlps=(MlpLayout(n_input=encoded + 2 * 16 + 7, n_output=3, n_neurons=64, n_hidden_layers=2),),
        ),
        Variant(
            "smoothstep",
            hash_grids=(
                dataclasses.replace(image_grid, interpolation="Smoothstep"),
                dataclasses.replace(sdf_grid, interpolation="Smoothstep"),
            ),
        ),
    ]


@dataclass
class Target:
    """One Warp module to compile (the unit of compilation)."""

    label: str
    module: wp.context.Module = field(repr=False)
    tile: bool
    origins: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)
    #: generic kernels with no concrete overload (cannot be compiled ahead of time)
    no_overload: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The Warp module's name (unique per target)."""
        return self.module.name


@dataclass
class JobResult:
    """Outcome of one (module, arch) compile, or of a check that failed before compiling."""

    target: str
    module: str
    arch: int | None
    status: str  # "compiled" | "cached" | "failed"
    seconds: float = 0.0
    message: str = ""
    stage: str = ""  # for failures: "import", "codegen", "compile", "overload", "worker"

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class CheckReport:
    """Result of :func:`check`."""

    targets: list[Target]
    results: list[JobResult]
    archs: tuple[int, ...]
    tile_archs: tuple[int, ...]
    seconds: float

    @property
    def compiled(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "compiled"]

    @property
    def cached(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "cached"]

    @property
    def failures(self) -> list[JobResult]:
        return [r for r in self.results if r.failed]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        """JSON-ready summary: counts, archs, seconds and the failures."""
        return {
            "modules": len(self.targets),
            "archs": list(self.archs),
            "tile_archs": list(self.tile_archs),
            "compiled": len(self.compiled),
            "cached": len(self.cached),
            "failed": len(self.failures),
            "seconds": round(self.seconds, 2),
            "failures": [
                {"target": r.target, "module": r.module, "arch": r.arch, "stage": r.stage, "message": r.message}
                for r in self.failures
            ],
        }


def discover_modules(package: str = _PACKAGE) -> tuple[dict[str, types.ModuleType], dict[str, str]]:
    """Import every submodule of ``package``.

    Returns:
        ``(modules, errors)``: module name -> module, and module name -> import error for those that failed.
    """
    pkg = importlib.import_module(package)
    modules: dict[str, types.ModuleType] = {}
    errors: dict[str, str] = {}
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.", onerror=lambda name: None):
        if info.name == _SELF:
            continue
        try:
            modules[info.name] = importlib.import_module(info.name)
        except Exception:
            errors[info.name] = traceback.format_exc(limit=4)
    return modules, errors


def _module_level_kernels(mod: types.ModuleType) -> list[wp.Kernel]:
    """Kernels bound at module level, directly or in a dict/list/tuple (e.g. a table of kernels)."""
    found: dict[int, wp.Kernel] = {}
    for value in vars(mod).values():
        if isinstance(value, dict):
            candidates = value.values()
        else:
            candidates = value if isinstance(value, list | tuple) else [value]
        for v in candidates:
            if isinstance(v, wp.Kernel):
                found.setdefault(id(v), v)
    return list(found.values())


def _uses_tiles(kernel: wp.Kernel) -> bool:
    return "wp.tile" in (getattr(kernel.adj, "source", "") or "")


def _kernel_groups(variant: Variant) -> list[tuple[str, list[wp.Kernel], bool]]:
    """``(label, kernels, tile)`` for each factory call a variant makes."""
    groups = []
    for g in variant.hash_grids:
        desc = f"n_dims={g.n_dims}, F={g.n_features_per_level}, {g.interpolation}"
        for role, k in encoding_kernels(g).items():
            groups.append((f"{_PACKAGE}.hash_encoding.encoding_kernels({desc}).{role}", [k], False))
    for m in variant.mlps:
        desc = f"{m.n_input}->{m.n_output}" + (f", width {m.n_neurons}" if m.n_hidden_layers else ", linear")
        groups.append((f"{_PACKAGE}.mlp_tile.tile_kernels({desc})", list(tile_kernels(m).values()), True))
    for name in variant.image_dtypes:
        k = bilinear_kernel(getattr(wp, name))
        groups.append((f"{_PACKAGE}.image_sampling.bilinear_kernel({name})", [k], False))
    return groups


def collect_targets(
    variants: Iterable[Variant] | None = None,
    modules: Iterable[str | types.ModuleType] | None = None,
) -> tuple[list[Target], list[JobResult]]:
    """The Warp modules to compile, and failures found while collecting them (imports, missing overloads).

    Args:
        variants: configurations whose factory-made kernels to include (None = :func:`default_variants`).
        modules: Python modules to scan for module-level kernels (None = every submodule of ``warp_kernels``).
    """
    failures: list[JobResult] = []
    if modules is None:
        found, errors = discover_modules()
        mods = list(found.values())
        for name, err in errors.items():
            failures.append(JobResult(name, name, None, "failed", message=err, stage="import"))
    else:
        mods = []
        for m in modules:
            if isinstance(m, types.ModuleType):
                mods.append(m)
                continue
            try:
                mods.append(importlib.import_module(m))
            except Exception:
                failures.append(JobResult(m, m, None, "failed", message=traceback.format_exc(limit=4), stage="import"))

    groups: list[tuple[str, list[wp.Kernel], bool]] = []
    for mod in mods:
        kernels = _module_level_kernels(mod)
        by_module: dict[str, list[wp.Kernel]] = {}
        for k in kernels:
            by_module.setdefault(k.module.name, []).append(k)
        for wp_name, ks in by_module.items():
            # a kernel re-exported from another module is labelled by the module that defines it
            label = wp_name if wp_name in sys.modules else f"{mod.__name__} [{wp_name}]"
            groups.append((label, ks, any(_uses_tiles(k) for k in ks)))
    for variant in default_variants() if variants is None else variants:
        for label, ks, tile in _kernel_groups(variant):
            groups.append((f"{label} <{variant.name}>", ks, tile))

    targets: dict[str, Target] = {}
    for label, ks, tile in groups:
        module = ks[0].module
        t = targets.get(module.name)
        if t is None:
            # the module's own kernel table also holds kernels not bound at module level
            t = targets[module.name] = Target(label.rsplit(" <", 1)[0], module, tile)
            for key, k in module.kernels.items():
                t.kernels.append(key)
                if k.is_generic and not k.overloads:
                    t.no_overload.append(key)
        t.tile = t.tile or tile
        if " <" in label:
            t.origins.append(label.rsplit(" <", 1)[1].rstrip(">"))
    for t in targets.values():
        if t.no_overload:
            failures.append(JobResult(
                t.label, t.name, None, "failed", stage="overload",
                message=f"generic kernel(s) {', '.join(t.no_overload)} have no concrete overload, so they cannot "
                        "be compiled ahead of time; declare the launched types with wp.overload",
            ))
    return list(targets.values()), failures


# --------------------------------------------------------------------------------------------------------------
# Compiling


def nvrtc_archs() -> list[int]:
    """CUDA architectures Warp's NVRTC can compile for here (empty without NVRTC)."""
    try:
        return list(wp.get_cuda_supported_archs())
    except Exception:
        return []


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ngp-sdk/cuda-check`` (``~/.cache/ngp-sdk/cuda-check``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ngp-sdk" / "cuda-check"


def _cache_key(module_hash: str, arch: int, use_ptx: bool) -> str:
    text = f"{module_hash}|sm_{arch}|{'ptx' if use_ptx else 'cubin'}|warp {wp.config.version}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _marker_path(cache_dir: Path, target: Target, arch: int, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in target.name)[:100]
    return cache_dir / f"{safe}.sm{arch}.{key}.ok"


@contextlib.contextmanager
def _captured_fds():
    """Send file descriptors 1 and 2 (where NVRTC's log goes) to a temporary file; yields a list that receives
    the captured text on exit."""
    out: list[str] = []
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as f:
        try:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield out
        finally:
            for s in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    s.flush()
            with contextlib.suppress(Exception):
                ctypes.CDLL(None).fflush(None)  # C stdio buffers of the native compiler
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            f.seek(0)
            out.append(f.read().decode(errors="replace"))


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE // 2] + "\n[...]\n" + text[-_MAX_MESSAGE // 2 :]


def _compile(target: Target, arch: int, use_ptx: bool) -> tuple[bool, float, str]:
    """Compile one module for one arch into a temporary directory: ``(ok, seconds, message)``."""
    tmp = tempfile.mkdtemp(prefix="ngp-cuda-check-")
    t0 = time.perf_counter()
    error: Exception | None = None
    try:
        with _captured_fds() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # generic kernels without overloads are reported by collect_targets
            try:
                wp.compile_aot_module(target.module, arch=arch, module_dir=os.path.join(tmp, "out"), use_ptx=use_ptx)
            except Exception as e:  # codegen and NVRTC errors alike
                error = e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0
    if error is None:
        return True, seconds, ""
    text = f"{type(error).__name__}: {error}"
    if log and log[0].strip():
        text += "\n" + log[0]
    return False, seconds, _clip(text)


# worker processes: the targets rebuilt from the same inputs, by Warp module name
_WORKER_TARGETS: dict[str, Target] = {}


def _worker_init(variants, modules, warp_cache_dir: str | None) -> None:
    if warp_cache_dir:
        wp.config.kernel_cache_dir = warp_cache_dir
    wp.config.quiet = True
    with _captured_fds():  # the "no CUDA driver" warning of every worker
        wp.init()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        targets, _ = collect_targets(variants, modules)
    _WORKER_TARGETS.update({t.name: t for t in targets})


def _worker_compile(name: str, arch: int, use_ptx: bool, expected_hash: str) -> tuple[bool, float, str, str]:
    target = _WORKER_TARGETS.get(name)
    if target is None:
        return False, 0.0, f"worker could not rebuild module {name}", ""
    try:
        module_hash = target.module.get_module_hash().hex()
    except Exception as e:
        return False, 0.0, _clip(f"{type(e).__name__}: {e}"), ""
    ok, seconds, message = _compile(target, arch, use_ptx)
    return ok, seconds, message, module_hash


def check(
    variants: Iterable[Variant] | None = None,
    archs: Sequence[int] = DEFAULT_ARCHS,
    tile_archs: Sequence[int] = DEFAULT_TILE_ARCHS,
    *,
    extra_variants: Iterable[Variant] = (),
    modules: Iterable[str | types.ModuleType] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    use_ptx: bool = False,
    jobs: int | None = None,
    fresh_warp_cache: bool = False,
    only: str | None = None,
    progress=None,
) -> CheckReport:
    """Compile every kernel module for CUDA ahead of time; see the module docstring.

    Args:
        variants: configurations whose factory-made kernels are compiled (None = :func:`default_variants`).
        archs: SM architectures for non-tile modules.
        tile_archs: SM architectures for tile modules (empty = skip them).
        extra_variants: added to ``variants`` (e.g. the SDK's test configurations).
        modules: Python modules scanned for module-level kernels (names or modules; None = all of
            ``warp_kernels``). Modules given by name must be importable by the worker processes.
        cache_dir: where success markers live (None = :func:`default_cache_dir`).
        use_cache: skip (module, arch) pairs with a marker; False compiles everything (markers are still written).
        use_ptx: compile to PTX instead of CUBIN (CUBIN also runs ptxas: the stronger check).
        jobs: worker processes (None = ``min(2, cpu_count)``); 1 compiles in this process, one at a time.
        fresh_warp_cache: use an empty temporary Warp kernel cache, so cuBLASDx LTO objects are rebuilt too.
        only: compile only targets whose label or Warp module name contains this string.
        progress: ``callable(str)`` for progress lines (None = silent).

    Returns:
        The report; ``report.ok`` is False when anything failed.
    """
    t_start = time.perf_counter()
    say = progress or (lambda line: None)
    archs, tile_archs = tuple(int(a) for a in archs), tuple(int(a) for a in tile_archs)
    variant_list = list(default_variants() if variants is None else variants) + list(extra_variants)
    module_list = None if modules is None else list(modules)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    supported = nvrtc_archs()
    if not supported:
        raise RuntimeError("NVRTC is not available in this Warp build: CUDA kernels cannot be compiled here")
    unsupported = sorted({*archs, *tile_archs} - set(supported))
    if unsupported:
        raise ValueError(f"NVRTC here cannot target sm_{unsupported}; supported: {supported}")

    targets, results = collect_targets(variant_list, module_list)
    if only:
        targets = [t for t in targets if only in t.label or only in t.name]
        results = [r for r in results if only in r.target or only in r.module]

    # (target, arch) pairs, the slow tile modules first so they overlap with the many small ones
    todo: list[tuple[Target, int, str, Path | None]] = []
    for t in sorted(targets, key=lambda t: not t.tile):
        try:
            module_hash = t.module.get_module_hash().hex()
        except Exception as e:
            for arch in tile_archs if t.tile else archs:
                results.append(JobResult(t.label, t.name, arch, "failed", message=_clip(f"{type(e).__name__}: {e}"),
                                         stage="codegen"))
            continue
        if t.no_overload and len(t.no_overload) == len(t.kernels):
            continue  # nothing compilable; already reported
        for arch in tile_archs if t.tile else archs:
            marker = _marker_path(cache, t, arch, _cache_key(module_hash, arch, use_ptx))
            if use_cache and marker.exists():
                results.append(JobResult(t.label, t.name, arch, "cached"))
                say(f"  cached        sm_{arch}  {t.label}")
            else:
                todo.append((t, arch, module_hash, marker))

    n = len(todo)
    done = 0

    def record(t: Target, arch: int, marker: Path | None, ok: bool, seconds: float, message: str, stage: str) -> None:
        nonlocal done
        done += 1
        if ok:
            results.append(JobResult(t.label, t.name, arch, "compiled", seconds))
            if marker is not None:
                _write_marker(marker, t, arch, seconds)
        else:
            results.append(JobResult(t.label, t.name, arch, "failed", seconds, message, stage))
        status = "ok    " if ok else "FAILED"
        say(f"[{done:>{len(str(n))}}/{n}] {status} {seconds:6.1f}s  sm_{arch}  {t.label}"
            + ("" if ok else f"  ({t.name})"))

    warp_cache = tempfile.mkdtemp(prefix="ngp-cuda-check-warp-") if fresh_warp_cache else None
    try:
        workers = min(jobs if jobs is not None else min(2, os.cpu_count() or 1), max(n, 1))
        if workers <= 1:
            saved_cache = wp.config.kernel_cache_dir
            if warp_cache:
                wp.config.kernel_cache_dir = warp_cache
            try:
                for t, arch, _h, marker in todo:
                    ok, seconds, message = _compile(t, arch, use_ptx)
                    record(t, arch, marker, ok, seconds, message, "compile")
            finally:
                wp.config.kernel_cache_dir = saved_cache
        elif todo:
            ctx = multiprocessing.get_context("spawn")  # no fork of an initialised CUDA/Warp runtime
            with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_worker_init, initargs=(variant_list, module_list, warp_cache)
            ) as pool:
                futures = {pool.submit(_worker_compile, t.name, arch, use_ptx, h): (t, arch, h, marker)
                           for t, arch, h, marker in todo}
                for fut in concurrent.futures.as_completed(futures):
                    t, arch, h, marker = futures[fut]
                    try:
                        ok, seconds, message, worker_hash = fut.result()
                    except Exception as e:  # a crashed worker (e.g. killed for memory)
                        record(t, arch, marker, False, 0.0, f"worker failed: {type(e).__name__}: {e}", "worker")
                        continue
                    if ok and worker_hash != h:
                        say(f"  note: {t.name} hashed {worker_hash[:8]} in a worker but {h[:8]} here; not cached")
                        marker = None
                    record(t, arch, marker, ok, seconds, message, "compile")
    finally:
        if warp_cache:
            shutil.rmtree(warp_cache, ignore_errors=True)

    return CheckReport(targets, results, archs, tile_archs, time.perf_counter() - t_start)


def _write_marker(marker: Path, target: Target, arch: int, seconds: float) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"target": target.label, "module": target.name, "arch": arch,
                                   "seconds": round(seconds, 2), "warp": wp.config.version}) + "\n")
        os.replace(tmp, marker)
    except OSError:
        pass  # an unwritable cache only costs a recompile next time


# --------------------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warp_kernels.cuda_check",
        description="Compile every Warp kernel module for CUDA ahead of time (no GPU needed).",
    )
    parser.add_argument("--arch", type=int, nargs="+", default=list(DEFAULT_ARCHS),
                        help="SM architectures for all non-tile modules (default: 80 90)")
    parser.add_argument("--tile-arch", type=int, nargs="*", default=list(DEFAULT_TILE_ARCHS),
                        help="SM architectures for the tile (MLP) modules; none = skip them (default: 90)")
    parser.add_argument("--cache-dir", default=None, help=f"success markers (default: {default_cache_dir()})")
    parser.add_argument("--no-cache", action="store_true", help="compile everything, ignoring the markers")
    parser.add_argument("--json", action="store_true", help="print a final JSON summary line")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: 2, or 1 on one core)")
    parser.add_argument("--ptx", action="store_true", help="compile to PTX instead of CUBIN")
    parser.add_argument("--fresh-warp-cache", action="store_true",
                        help="also rebuild Warp's cached cuBLASDx LTO objects (a fully cold run)")
    parser.add_argument("--only", default=None, help="only targets whose name contains this string")
    args = parser.parse_args(argv)

    wp.config.quiet = True
    with _captured_fds():  # Warp's "no CUDA driver" warning
        wp.init()
    print(f"cuda_check: Warp {wp.config.version}, NVRTC archs {nvrtc_archs()}; "
          f"sm_{'/'.join(map(str, args.arch))} for all modules, "
          f"sm_{'/'.join(map(str, args.tile_arch)) or '-'} for tile modules", flush=True)
    try:
        report = check(
            archs=args.arch, tile_archs=args.tile_arch, cache_dir=args.cache_dir, use_cache=not args.no_cache,
            use_ptx=args.ptx, jobs=args.jobs, fresh_warp_cache=args.fresh_warp_cache, only=args.only,
            progress=lambda line: print(line, flush=True),
        )
    except (RuntimeError, ValueError) as e:
        print(f"cuda_check: {e}", file=sys.stderr)
        return 2

    s = report.summary()
    print(f"cuda_check: {s['modules']} modules, {s['compiled']} compiled, {s['cached']} cached, "
          f"{s['failed']} failed in {report.seconds:.1f}s")
    for r in report.failures:
        where = f"sm_{r.arch}" if r.arch is not None else r.stage
        print(f"\nFAILED [{where}] {r.target} (Warp module {r.module}, {r.stage}):\n{r.message}")
    if args.json:
        print(json.dumps(s))
    return 0 if report.ok else 1


if __name__ == "__main__":
    # run through the package module so worker processes unpickle the same functions and classes
    from warp_kernels import cuda_check as _self

    sys.exit(_self.main())
