"""NeRF dataset loading: instant-ngp, Blender-synthetic and nerfstudio ``transforms*.json`` files.

All three formats share one reader (instant-ngp's ``load_nerf`` semantics; the instant-ngp format is a
superset of the Blender one, nerfstudio's is the same with a ``camera_model`` key):

- **Files.** A ``.json`` path is read alone. A folder path reads ``transforms_<split>.json`` when the folder
  has split files (``transforms_train.json`` ...); without split files, ``split`` must be ``"train"`` or
  ``None`` and every ``*.json`` in the folder holding a ``frames`` list is merged (as instant-ngp does).
  ``split=None`` always merges everything (Blender: train + val + test).
- **Frames** are sorted by ``file_path`` in natural order within each file (instant-ngp does this, so image
  indices match), ``n_frames`` truncates a file. ``file_path`` is relative to the json's folder; without an
  extension the first existing of ``.png, .jpg, .jpeg, .bmp, .gif, .tga, .pnm, .psd, .exr`` is used (Blender
  writes ``./train/r_0``). Frames whose image does not exist are skipped with one warning naming all of them.
- **Camera.** Focal length per axis: ``x_fov`` (degrees) > ``fl_x`` > ``camera_angle_x`` (radians); a missing
  axis copies the other. The principal point ``cx, cy`` defaults to the image centre; ``w, h`` default to the
  image size and must agree with it. Distortion: ``k1 k2 p1 p2`` (OPENCV, when any is non-zero); fisheye
  ``k1 k2 k3 k4`` when ``camera_model == "OPENCV_FISHEYE"`` (nerfstudio) or when ``is_fisheye`` is true and a
  coefficient is non-zero (instant-ngp). Any of these keys in a frame overrides the file's top level (a focal
  key in a frame replaces the whole top-level focal pair, as instant-ngp does).
- **Scene.** ``scale`` (default 0.33), ``offset`` (default 0.5, a number or a 3-list), ``aabb_scale``
  (default 1), ``aabb`` (sets scale and offset so the box fits the unit cube) and ``up`` are read; merged
  files must agree. Poses are converted with :func:`ngp_sdk.core.cameras.nerf_matrix_to_ngp` into the internal
  convention; the file's matrices are kept too. nerfstudio's ``applied_transform`` (already applied to the
  poses by nerfstudio) is kept for reference and not re-applied.

Images stay 8-bit (``uint8``) or, for OpenEXR inputs, ``float16``; alpha is kept (Blender images are RGBA
with straight alpha; the training loop composites over a random background). When any image of the set has
alpha, every image gets 4 channels (opaque alpha added). ``downscale=K`` shrinks images by an integer factor
with an area average (alpha-weighted for straight-alpha RGBA; trailing rows/columns that do not fill a block
are cropped) and scales the intrinsics by ``1/K``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.cameras import NERF_OFFSET, NERF_SCALE, Intrinsics, focal_length_from_fov, nerf_matrix_to_ngp
from ngp_sdk.core.cameras import pack_intrinsics as _pack_intrinsics
from ngp_sdk.core.errors import ConfigError, DataError
from ngp_sdk.core.images import codes_to_uint8, read_image, read_image_header

__all__ = ["IMAGE_EXTENSIONS", "NerfDataset", "load_nerf_dataset", "composite_alpha"]

#: Extensions tried, in order, for a ``file_path`` without one (instant-ngp's list, minus ``pic``).
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "gif", "tga", "pnm", "psd", "exr")

_PERSPECTIVE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
_MAX_LOADER_THREADS = 8


# ----------------------------------------------------------------------------------------------------------
# dataset
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class NerfDataset:
    """A loaded NeRF dataset (``n`` frames).

    Attributes:
        images: ``uint8`` (``float16`` for EXR) ``[n, H, W, C]`` with ``C`` = 3, or 4 when ``has_alpha``; a
            list of ``[H_i, W_i, C]`` arrays when sizes differ; ``None`` when loaded with
            ``load_images=False`` (use :meth:`load_image` or :meth:`with_images`).
        intrinsics: per-frame :class:`~ngp_sdk.core.cameras.Intrinsics` at the loaded (downscaled) resolution.
        poses: float32 ``[n, 3, 4]`` camera-to-world in the internal convention (see :mod:`ngp_sdk.core.cameras`).
        nerf_poses: float64 ``[n, 4, 4]`` camera-to-world as stored in the file (NeRF/OpenGL camera axes).
        image_paths: resolved image file of every frame.
        file_names: ``file_path`` of every frame as written in the json.
        json_paths: the transforms files that were read.
        has_alpha: whether the images carry an alpha channel (then ``C == 4``).
        is_hdr: whether the images are linear HDR (EXR, ``float16``).
        aabb_scale: side of the internal scene box, centred at 0.5 (instant-ngp ``aabb_scale``).
        scale: NeRF -> internal scale.
        offset: NeRF -> internal offset (NeRF axis order, added after scaling).
        up: world up vector in the internal convention.
        downscale: integer factor the images were shrunk by.
        source_format: ``"instant-ngp"``, ``"blender"``, ``"nerfstudio"`` or ``"mixed"``.
        applied_transform: nerfstudio's ``applied_transform`` (float64 ``[3, 4]``) or None.
        depth_paths: per frame, its depth image (a frame's ``depth_path``, instant-ngp's key) or None; empty
            when no frame has one.
        integer_depth_scale: NeRF world units per stored unit of an integer (PNG) depth image (instant-ngp's
            top-level key; default 1). Float depth files (``.npy``, ``.exr``, ``.tif``) hold world units.
    """

    images: np.ndarray | list[np.ndarray] | None
    intrinsics: tuple[Intrinsics, ...]
    poses: np.ndarray
    nerf_poses: np.ndarray
    image_paths: tuple[Path, ...]
    file_names: tuple[str, ...]
    json_paths: tuple[Path, ...]
    has_alpha: bool
    is_hdr: bool
    aabb_scale: int
    scale: float
    offset: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    downscale: int = 1
    source_format: str = "instant-ngp"
    applied_transform: np.ndarray | None = None
    depth_paths: tuple[Path | None, ...] = ()
    integer_depth_scale: float = 1.0

    def __len__(self) -> int:
        return len(self.intrinsics)

    @property
    def n_images(self) -> int:
        """Number of frames."""
        return len(self.intrinsics)

    @property
    def image_sizes(self) -> np.ndarray:
        """int32 ``[n, 2]``: ``(width, height)`` of every frame at the loaded resolution."""
        return np.array([(k.width, k.height) for k in self.intrinsics], dtype=np.int32).reshape(-1, 2)

    @property
    def n_channels(self) -> int:
        """Channels per image: 4 with alpha, else 3."""
        return 4 if self.has_alpha else 3

    @property
    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """Internal scene box ``(min float32 [3], max float32 [3])``: ``0.5 -+ aabb_scale / 2``."""
        half = 0.5 * self.aabb_scale
        return np.full(3, 0.5 - half, np.float32), np.full(3, 0.5 + half, np.float32)

    def camera_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cam_params [n, 4], cam_dist [n, 4], cam_model [n])`` NumPy arrays for ``generate_rays``."""
        return _pack_intrinsics(self.intrinsics)

    def load_image(self, i: int) -> np.ndarray:
        """Read, convert and downscale frame ``i`` from disk (works whether or not ``images`` is loaded).

        Returns:
            ``[H, W, n_channels]`` ``uint8`` (``float16`` for HDR).
        """
        k = self.intrinsics[i]
        return _load_one(
            self.image_paths[i], self.downscale, self.has_alpha, self.is_hdr, (k.height, k.width)
        )

    @property
    def has_depth(self) -> bool:
        """Whether any frame has a depth image."""
        return any(p is not None for p in self.depth_paths)

    def load_depth(self, i: int) -> np.ndarray | None:
        """Frame ``i``'s z-depth, float32 ``[H, W]`` in NeRF world units at the loaded resolution (0 = invalid;
        a downscaled pixel averages the valid values under it), or None when the frame has none.

        Raises:
            DataError: an unreadable depth file, or one whose size differs from the frame's image.
        """
        path = self.depth_paths[i] if i < len(self.depth_paths) else None
        if path is None:
            return None
        k = self.intrinsics[i]
        try:
            if path.suffix.lower() == ".npy":
                raw = np.load(path, allow_pickle=False)
            else:
                raw = read_image(path)
        except Exception as e:  # noqa: BLE001 - any reader failure is a data problem of this file
            raise DataError(f"cannot read depth image {path}: {e}") from e
        raw = np.asarray(raw)
        if raw.ndim == 3:
            raw = raw[..., 0]
        depth = raw.astype(np.float32) * (np.float32(self.integer_depth_scale) if raw.dtype.kind in "ui" else 1.0)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        f = self.downscale
        if depth.shape != (k.height * f, k.width * f) and depth.shape[0] // f != k.height:
            raise DataError(f"depth image {path} is {depth.shape[1]}x{depth.shape[0]}, its frame "
                            f"{k.width * f}x{k.height * f}")
        if f > 1:
            blocks = depth[: k.height * f, : k.width * f].reshape(k.height, f, k.width, f)
            valid = (blocks > 0).sum(axis=(1, 3))
            depth = np.where(valid > 0, blocks.sum(axis=(1, 3)) / np.maximum(valid, 1), 0.0).astype(np.float32)
        return depth

    def with_images(self) -> NerfDataset:
        """This dataset with ``images`` loaded (itself if they already are)."""
        if self.images is not None:
            return self
        return replace(self, images=_load_all(self))


# ----------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------


def _read_frame(path: Path) -> np.ndarray:
    """A frame in the dataset's precision: ``uint8 [H, W, 3|4]`` codes (16-bit files rounded to 8 bits) or
    ``float16`` linear for OpenEXR (the SDK's one reader, :func:`ngp_sdk.core.images.read_image`)."""
    img = read_image(path)
    if img.dtype.kind == "f":
        return img.astype(np.float16)
    return codes_to_uint8(img)


def _area_downscale(img: np.ndarray, k: int) -> np.ndarray:
    """Shrink ``[H, W, C]`` by the integer factor ``k`` with an area average (crops the remainder)."""
    if k == 1:
        return img
    h, w, c = img.shape[0] // k, img.shape[1] // k, img.shape[2]
    x = img[: h * k, : w * k].astype(np.float32).reshape(h, k, w, k, c)
    if img.dtype == np.uint8 and c == 4:
        # straight alpha: average colour weighted by coverage, so transparent texels do not darken edges
        a = x[..., 3:]
        a_sum = a.sum(axis=(1, 3))
        rgb = np.where(
            a_sum > 0,
            (x[..., :3] * a).sum(axis=(1, 3)) / np.maximum(a_sum, 1e-12),
            x[..., :3].mean(axis=(1, 3)),
        )
        out = np.concatenate([rgb, a_sum / (k * k)], axis=-1)
    else:
        out = x.mean(axis=(1, 3))
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(img.dtype)


def _load_one(path: Path, k: int, want_alpha: bool, is_hdr: bool, shape: tuple[int, int]) -> np.ndarray:
    img = _read_frame(path)
    if (img.dtype == np.float16) != is_hdr:
        raise DataError(f"image {path} is {'HDR' if img.dtype == np.float16 else 'LDR'}, unlike the others")
    if want_alpha and img.shape[2] == 3:
        one = 255 if img.dtype == np.uint8 else 1.0
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), one, dtype=img.dtype)], axis=2)
    elif not want_alpha and img.shape[2] == 4:
        img = img[..., :3]
    img = _area_downscale(img, k)
    if img.shape[:2] != shape:
        raise DataError(
            f"image {path} has size {img.shape[1]}x{img.shape[0]} after downscale {k}, expected "
            f"{shape[1]}x{shape[0]}"
        )
    return np.ascontiguousarray(img)


def _load_all(ds: NerfDataset) -> np.ndarray | list[np.ndarray]:
    from warp_kernels.parallel import num_cpu_threads

    n = len(ds)
    sizes = {(k.height, k.width) for k in ds.intrinsics}
    dtype = np.float16 if ds.is_hdr else np.uint8
    stacked = None
    if len(sizes) == 1:
        (h, w) = next(iter(sizes))
        stacked = np.empty((n, h, w, ds.n_channels), dtype=dtype)
    out: list[np.ndarray | None] = [None] * n

    def work(i: int) -> None:
        img = ds.load_image(i)
        if stacked is not None:
            stacked[i] = img
        else:
            out[i] = img

    with ThreadPoolExecutor(max_workers=max(1, min(_MAX_LOADER_THREADS, num_cpu_threads(), n))) as pool:
        list(pool.map(work, range(n)))
    return stacked if stacked is not None else out  # type: ignore[return-value]


def composite_alpha(image: np.ndarray, background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Composite straight-alpha ``[..., 4]`` pixels over a constant background -> float32 ``[..., 3]``.

    ``uint8`` input is scaled to ``[0, 1]``; 3-channel input is returned as float32 unchanged.
    """
    x = image.astype(np.float32)
    if image.dtype == np.uint8:
        x /= 255.0
    if x.shape[-1] == 3:
        return x
    a = x[..., 3:4]
    return x[..., :3] * a + np.asarray(background, dtype=np.float32) * (1.0 - a)


# ----------------------------------------------------------------------------------------------------------
# json parsing
# ----------------------------------------------------------------------------------------------------------


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _num(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: '{key}' must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise DataError(f"{where}: '{key}' must be finite, got {v}")
    return v


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read transforms file {path}: {e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e}") from e


def _resolve_json_paths(path: Path, split: str | None) -> tuple[list[Path], bool]:
    """The transforms files to read and whether files without frames are skipped (folder merge)."""
    if path.is_file():
        return [path], False
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist")
    if not path.is_dir():
        raise DataError(f"dataset path {path} is neither a file nor a folder")
    if split is not None:
        candidate = path / f"transforms_{split}.json"
        if candidate.is_file():
            return [candidate], False
        split_files = sorted(p.name for p in path.glob("transforms_*.json"))
        if split_files:
            raise DataError(
                f"{path} has no transforms_{split}.json (split files found: {', '.join(split_files)})"
            )
        if split != "train":
            raise DataError(
                f"{path} has no split files (transforms_<split>.json); use split='train' or None to read "
                f"all of its transforms files, not split={split!r}"
            )
    jsons = sorted(path.glob("*.json"), key=lambda p: _natural_key(p.name))
    if not jsons:
        raise DataError(f"{path} contains no *.json transforms file")
    return jsons, True


def _source_format(d: dict) -> str:
    if "camera_model" in d or "applied_transform" in d:
        return "nerfstudio"
    if not any(k in d for k in ("fl_x", "fl_y", "w", "h", "cx", "cy", "aabb_scale", "k1")):
        return "blender"
    return "instant-ngp"


def _scene_settings(d: dict, where: str) -> dict[str, Any]:
    """Explicit scene settings of one transforms file."""
    s: dict[str, Any] = {}
    if "normal_mts_args" in d:
        raise DataError(f"{where}: Mitsuba-convention datasets ('normal_mts_args') are not supported")
    if "scale" in d:
        s["scale"] = _num(where, "scale", d["scale"])
        if s["scale"] <= 0:
            raise DataError(f"{where}: 'scale' must be positive, got {s['scale']}")
    if "offset" in d:
        off = d["offset"]
        vals = off if isinstance(off, list) else [off] * 3
        if len(vals) != 3:
            raise DataError(f"{where}: 'offset' must be a number or a list of 3 numbers, got {off!r}")
        s["offset"] = tuple(_num(where, "offset", v) for v in vals)
    if "aabb" in d:
        box = np.asarray(d["aabb"], dtype=np.float64) if _is_nested_numbers(d["aabb"]) else None
        if box is None or box.shape != (2, 3) or not np.all(np.isfinite(box)):
            raise DataError(
                f"{where}: 'aabb' must be [[minx, miny, minz], [maxx, maxy, maxz]], got {d['aabb']!r}"
            )
        length = max(1e-6, float(np.max(np.abs(box[1] - box[0]))))
        s["scale"] = 1.0 / length
        s["offset"] = tuple(float(c) for c in (-(box[0] + box[1]) * 0.5 * s["scale"] + 0.5))
    if "aabb_scale" in d:
        a = _num(where, "aabb_scale", d["aabb_scale"])
        if a < 1 or a != int(a):
            raise DataError(f"{where}: 'aabb_scale' must be a positive integer, got {d['aabb_scale']!r}")
        s["aabb_scale"] = int(a)
    if "integer_depth_scale" in d:
        s["integer_depth_scale"] = _num(where, "integer_depth_scale", d["integer_depth_scale"])
        if not s["integer_depth_scale"] > 0:
            raise DataError(f"{where}: 'integer_depth_scale' must be positive, got {d['integer_depth_scale']!r}")
    if "up" in d:
        up = d["up"]
        if not (isinstance(up, list) and len(up) == 3):
            raise DataError(f"{where}: 'up' must be a list of 3 numbers, got {up!r}")
        u = [_num(where, "up", v) for v in up]
        s["up"] = (u[1], u[2], u[0])  # cycled like the poses
    return s


def _is_nested_numbers(x: Any) -> bool:
    try:
        np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _focal_pair(d: dict, width: int, height: int, where: str) -> tuple[float, float] | None:
    """instant-ngp ``read_focal_length``: ``x_fov`` (deg) > ``fl_x`` > ``camera_angle_x`` (rad), per axis."""

    def from_fov(res: int, key: str, radians: float) -> float:
        try:
            return focal_length_from_fov(res, radians)
        except DataError as e:
            raise DataError(f"{where}: '{key}': {e}") from e

    def axis(res: int, a: str) -> float:
        if f"{a}_fov" in d:
            return from_fov(res, f"{a}_fov", math.radians(_num(where, f"{a}_fov", d[f"{a}_fov"])))
        if f"fl_{a}" in d:
            return _num(where, f"fl_{a}", d[f"fl_{a}"])
        if f"camera_angle_{a}" in d:
            return from_fov(
                res, f"camera_angle_{a}", _num(where, f"camera_angle_{a}", d[f"camera_angle_{a}"])
            )
        return 0.0

    fx, fy = axis(width, "x"), axis(height, "y")
    if fx != 0.0:
        return fx, (fy if fy != 0.0 else fx)
    if fy != 0.0:
        return fy, fy
    return None


def _lens(cam: dict, where: str, ignored: list[str]) -> tuple[str, tuple[float, ...]]:
    """Camera model and distortion coefficients of a merged camera dict."""
    name = cam.get("camera_model")
    if name is not None and name not in (*_PERSPECTIVE_MODELS, "OPENCV_FISHEYE"):
        raise DataError(
            f"{where}: camera_model {name!r} is not supported (use one of "
            f"{', '.join((*_PERSPECTIVE_MODELS, 'OPENCV_FISHEYE'))})"
        )
    k = {key: _num(where, key, cam.get(key, 0.0)) for key in ("k1", "k2", "k3", "k4", "p1", "p2")}
    fisheye = name == "OPENCV_FISHEYE" or (
        bool(cam.get("is_fisheye", False)) and any(k[x] != 0.0 for x in ("k1", "k2", "k3", "k4"))
    )
    if fisheye:
        if k["p1"] or k["p2"]:
            ignored.append(f"{where}: p1/p2 on a fisheye camera")
        return "OPENCV_FISHEYE", (k["k1"], k["k2"], k["k3"], k["k4"])
    if k["k3"] or k["k4"]:
        ignored.append(f"{where}: k3/k4 on a non-fisheye camera")
    dist = (k["k1"], k["k2"], k["p1"], k["p2"])
    return ("OPENCV" if any(dist) else "PINHOLE"), dist


def _resolve_image(base: Path, file_path: str) -> Path:
    p = Path(file_path.replace("\\", "/"))
    p = p if p.is_absolute() else base / p
    if p.suffix == "" and not p.exists():
        for ext in IMAGE_EXTENSIONS:
            q = p.with_name(p.name + "." + ext)
            if q.exists():
                return q
    return p


def _pose(frame: dict, where: str) -> np.ndarray:
    key = "transform_matrix_start" if "transform_matrix_start" in frame else "transform_matrix"
    if key not in frame:
        raise DataError(f"{where}: frame has no 'transform_matrix'")
    raw = frame[key]
    try:
        m = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: '{key}' is not a 4x4 matrix of numbers") from e
    if m.shape != (4, 4):
        raise DataError(f"{where}: '{key}' must be 4x4, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise DataError(f"{where}: '{key}' contains NaN or infinite values")
    return m


@dataclass(kw_only=True)
class _Frame:
    json_path: Path
    file_path: str
    image_path: Path
    pose: np.ndarray
    top: dict
    frame: dict
    where: str
    depth_path: Path | None = None


# ----------------------------------------------------------------------------------------------------------
# loader
# ----------------------------------------------------------------------------------------------------------


def load_nerf_dataset(
    path: str | Path,
    *,
    split: str | None = "train",
    downscale: int = 1,
    max_frames: int | None = None,
    load_images: bool = True,
) -> NerfDataset:
    """Load a NeRF dataset (instant-ngp, Blender synthetic or nerfstudio ``transforms*.json``).

    Args:
        path: a transforms ``.json`` file, or a dataset folder (see the module docstring for how a folder
            and ``split`` pick the files).
        split: ``"train"``, ``"val"``, ``"test"`` ... picks ``transforms_<split>.json`` in a folder; ``None``
            merges every transforms file of the folder. Ignored when ``path`` is a file.
        downscale: integer factor (>= 1) to shrink the images by (area average); intrinsics follow.
        max_frames: keep only the first ``max_frames`` frames that have an image (after sorting).
        load_images: False skips decoding pixels (``images`` is None; headers are still read to check sizes).

    Returns:
        The :class:`NerfDataset`.

    Raises:
        ConfigError: on a bad ``downscale`` or ``max_frames``.
        DataError: a missing or invalid json (the message names the file and what is wrong), a transform
            matrix that is not 4x4 or holds NaN, no focal length, an image whose size contradicts ``w``/``h``,
            an unreadable image, conflicting scene settings between merged files, or no frames at all.
    """
    if isinstance(downscale, bool) or not isinstance(downscale, (int, np.integer)) or downscale < 1:
        raise ConfigError(f"downscale must be an integer >= 1, got {downscale!r}")
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1
    ):
        raise ConfigError(f"max_frames must be a positive integer or None, got {max_frames!r}")
    downscale = int(downscale)
    root = Path(path)
    json_paths, skip_frameless = _resolve_json_paths(root, split)

    frames: list[_Frame] = []
    missing: list[str] = []
    n_listed = 0
    used_jsons: list[Path] = []
    formats: set[str] = set()
    settings: dict[str, Any] = {}
    settings_from: dict[str, Path] = {}
    applied_transform = None
    for jp in json_paths:
        d = _read_json(jp)
        if not isinstance(d, dict):
            if skip_frameless:
                continue
            raise DataError(f"{jp}: expected a JSON object at the top level, got {type(d).__name__}")
        fr = d.get("frames")
        if not isinstance(fr, list):
            if skip_frameless:
                continue
            raise DataError(f"{jp}: no 'frames' list")
        used_jsons.append(jp)
        formats.add(_source_format(d))
        for key, value in _scene_settings(d, str(jp)).items():
            if key in settings and not np.allclose(settings[key], value):
                raise DataError(
                    f"{jp}: '{key}' = {value} conflicts with {settings[key]} from {settings_from[key]}"
                )
            settings[key], settings_from[key] = value, jp
        if "applied_transform" in d and applied_transform is None:
            at = np.asarray(d["applied_transform"], dtype=np.float64)
            if at.shape not in ((3, 4), (4, 4)):
                raise DataError(f"{jp}: 'applied_transform' must be 3x4 or 4x4, got shape {at.shape}")
            applied_transform = at[:3]
        for j, f in enumerate(fr):
            if not isinstance(f, dict) or not isinstance(f.get("file_path"), str):
                raise DataError(f"{jp}: frame {j} is not an object with a string 'file_path'")
        fr = sorted(fr, key=lambda f: _natural_key(f["file_path"].replace("\\", "/")))
        if "n_frames" in d:
            fr = fr[: int(_num(str(jp), "n_frames", d["n_frames"]))]
        top = {k: v for k, v in d.items() if k != "frames"}
        for f in fr:
            n_listed += 1
            where = f"{jp} frame '{f['file_path']}'"
            pose = _pose(f, where)
            img = _resolve_image(jp.parent, f["file_path"])
            if not img.is_file():
                missing.append(f["file_path"])
                continue
            dp = f.get("depth_path")
            if dp is not None and not isinstance(dp, str):
                raise DataError(f"{where}: 'depth_path' must be a string")
            frames.append(
                _Frame(
                    depth_path=_resolve_image(jp.parent, dp) if dp else None,
                    json_path=jp,
                    file_path=f["file_path"],
                    image_path=img,
                    pose=pose,
                    top=top,
                    frame=f,
                    where=where,
                )
            )
    if not used_jsons:
        raise DataError(f"no transforms file with a 'frames' list in {root}")
    if missing:
        warnings.warn(
            f"{len(missing)} of {n_listed} frames in {root} have no image file and are skipped: "
            + ", ".join(missing),
            stacklevel=2,
        )
    if not frames:
        raise DataError(f"no frames with an existing image in {', '.join(str(p) for p in used_jsons)}")
    if max_frames is not None:
        frames = frames[: int(max_frames)]

    intrinsics: list[Intrinsics] = []
    alpha_flags, hdr_flags = [], []
    ignored: list[str] = []
    for fr_ in frames:
        w, h, alpha, hdr = read_image_header(fr_.image_path)
        alpha_flags.append(alpha)
        hdr_flags.append(hdr)
        intrinsics.append(_frame_intrinsics(fr_, w, h, ignored).scaled(downscale))
    if ignored:
        warnings.warn(
            "ignored distortion coefficients: "
            + "; ".join(ignored[:5])
            + (f" (and {len(ignored) - 5} more)" if len(ignored) > 5 else ""),
            stacklevel=2,
        )
    if any(hdr_flags) and not all(hdr_flags):
        raise DataError(f"{root} mixes EXR (HDR) and 8-bit images")

    scale = float(settings.get("scale", NERF_SCALE))
    offset = tuple(float(v) for v in settings.get("offset", NERF_OFFSET))
    nerf_poses = np.stack([f.pose for f in frames])
    poses = nerf_matrix_to_ngp(nerf_poses[:, :3, :], scale, offset).astype(np.float32)
    ds = NerfDataset(
        images=None,
        intrinsics=tuple(intrinsics),
        poses=poses,
        nerf_poses=nerf_poses,
        image_paths=tuple(f.image_path for f in frames),
        file_names=tuple(f.file_path for f in frames),
        json_paths=tuple(used_jsons),
        has_alpha=any(alpha_flags),
        is_hdr=all(hdr_flags),
        aabb_scale=int(settings.get("aabb_scale", 1)),
        scale=scale,
        offset=offset,  # type: ignore[arg-type]
        up=tuple(settings.get("up", (0.0, 1.0, 0.0))),  # type: ignore[arg-type]
        downscale=downscale,
        source_format=formats.pop() if len(formats) == 1 else "mixed",
        applied_transform=applied_transform,
        depth_paths=tuple(f.depth_path for f in frames) if any(f.depth_path for f in frames) else (),
        integer_depth_scale=float(settings.get("integer_depth_scale", 1.0)),
    )
    return ds.with_images() if load_images else ds


def _frame_intrinsics(fr: _Frame, width: int, height: int, ignored: list[str]) -> Intrinsics:
    """Full-resolution intrinsics of one frame: top-level camera keys, overridden by the frame's."""
    cam = {**fr.top, **fr.frame}
    for key, actual in (("w", width), ("h", height)):
        if key in cam:
            v = _num(fr.where, key, cam[key])
            if v != actual:
                raise DataError(
                    f"{fr.where}: image {fr.image_path} is {width}x{height} but the transforms file says "
                    f"{key}={cam[key]}"
                )
    focal = _focal_pair(fr.frame, width, height, fr.where) or _focal_pair(fr.top, width, height, fr.where)
    if focal is None:
        raise DataError(f"{fr.where}: no focal length (fl_x/fl_y, camera_angle_x/y or x_fov/y_fov)")
    model, dist = _lens(cam, fr.where, ignored)
    cx = _num(fr.where, "cx", cam["cx"]) if "cx" in cam else width / 2
    cy = _num(fr.where, "cy", cam["cy"]) if "cy" in cam else height / 2
    try:
        return Intrinsics(
            width=width, height=height, fx=focal[0], fy=focal[1], cx=cx, cy=cy, model=model, dist=dist
        )
    except DataError as e:
        raise DataError(f"{fr.where}: {e}") from e
