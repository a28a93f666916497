"""The ahead-of-time CUDA compile check itself (warp_kernels.cuda_check): discovery, compile, cache, failures.

Compiles only tiny modules for one arch in this process; the full check runs as its own CI step.
"""

import textwrap

import pytest

from warp_kernels import cuda_check
from warp_kernels.hash_encoding import HashGridLayout
from warp_kernels.mlp import MlpLayout

pytestmark = pytest.mark.skipif(
    80 not in cuda_check.nvrtc_archs(), reason="NVRTC (sm_80) is not available in this Warp build"
)

_BROKEN_CUDA = '''
import warp as wp

# compiles for the CPU, fails for CUDA: the failure only shows in a CUDA compile
@wp.func_native("""
#if defined(__CUDA_ARCH__)
#error ngp_cuda_check_deliberately_broken
#endif
return x * 2.0f;
""")
def twice(x: float) -> float: ...


@wp.kernel
def broken_for_cuda(a: wp.array(dtype=float)):
    i = wp.tid()
    a[i] = twice(a[i])
'''

_BAD_CODEGEN = """
import warp as wp


@wp.kernel
def bad_builtin(a: wp.array(dtype=float)):
    i = wp.tid()
    a[i] = wp.ngp_no_such_builtin(a[i])
"""

_GENERIC = """
from typing import Any

import warp as wp


@wp.kernel
def scale_any(a: wp.array(dtype=Any), s: float):
    i = wp.tid()
    a[i] = a[i] * a.dtype(s)


@wp.kernel
def fill_any(a: wp.array(dtype=Any)):
    i = wp.tid()
    a[i] = a.dtype(0)


wp.overload(scale_any, {"a": wp.array(dtype=wp.float32)})  # fill_any has none
"""


def test_discovers_kernel_modules_and_factory_kernels():
    modules, errors = cuda_check.discover_modules()
    assert not errors
    assert {"warp_kernels.adam", "warp_kernels.hash_encoding", "warp_kernels.occupancy_grid"} <= set(modules)
    assert "warp_kernels.cuda_check" not in modules

    targets, failures = cuda_check.collect_targets()
    assert failures == []
    by_name = {t.name: t for t in targets}
    assert {"warp_kernels.adam", "warp_kernels.occupancy_grid", "warp_kernels.volume_rendering"} <= set(by_name)
    labels = [t.label for t in targets]
    for role in ("forward", "backward_table", "backward_input"):
        assert any("hash_encoding.encoding_kernels(n_dims=3, F=2, Linear)." + role in s for s in labels)
        assert any("hash_encoding.encoding_kernels(n_dims=2, F=2, Smoothstep)." + role in s for s in labels)
    tiles = {t.name for t in targets if t.tile}
    assert tiles == {"ngp_mlp_tile_32_3_64", "ngp_mlp_tile_32_16_64", "ngp_mlp_tile_32_1_64", "ngp_mlp_tile_71_3_64"}
    assert not by_name["warp_kernels.adam"].tile
    assert sum("bilinear_kernel" in s for s in labels) == 4
    assert len(by_name) == len(targets)  # one target per Warp module


def test_default_variants_match_the_task_layouts():
    variants = {v.name: v for v in cuda_check.default_variants()}
    assert variants["image"].mlps == (MlpLayout(n_input=32, n_output=3, n_neurons=64, n_hidden_layers=2),)
    assert [g.n_dims for g in variants["image"].hash_grids] == [2]
    density, colour = variants["nerf"].mlps
    assert (density.n_input, density.n_output, density.n_hidden_layers) == (32, 16, 1)
    assert (colour.n_input, colour.n_output, colour.n_hidden_layers, colour.output_activation) == (32, 3, 2, "sigmoid")
    assert variants["sdf"].mlps[0].n_output == 1
    assert {g.interpolation for g in variants["smoothstep"].hash_grids} == {"Smoothstep"}
    with pytest.raises(ValueError, match="image dtype"):
        cuda_check.Variant("bad", image_dtypes=("int32",))


def test_compiles_one_module_then_caches_it(tmp_path):
    kwargs = dict(variants=[], modules=["warp_kernels.adam"], archs=(80,), tile_archs=(), cache_dir=tmp_path, jobs=1)
    first = cuda_check.check(**kwargs)
    assert first.ok, first.failures
    assert [(r.module, r.arch, r.status) for r in first.results] == [("warp_kernels.adam", 80, "compiled")]
    assert len(list(tmp_path.glob("warp_kernels.adam.sm80.*.ok"))) == 1

    second = cuda_check.check(**kwargs)
    assert [(r.module, r.arch, r.status) for r in second.results] == [("warp_kernels.adam", 80, "cached")]
    assert second.summary()["cached"] == 1 and second.summary()["compiled"] == 0

    forced = cuda_check.check(**kwargs, use_cache=False)
    assert [r.status for r in forced.results] == ["compiled"]


def test_extra_variant_compiles_factory_kernels(tmp_path):
    grid = HashGridLayout(n_dims=2, n_levels=2, n_features_per_level=1)
    report = cuda_check.check(variants=[cuda_check.Variant("tiny", hash_grids=(grid,))], modules=[], archs=(80,),
                              tile_archs=(), cache_dir=tmp_path, jobs=1, only="forward")
    assert report.ok, report.failures
    assert [r.status for r in report.results] == ["compiled"]
    assert "encoding_kernels(n_dims=2, F=1, Linear).forward" in report.results[0].target


def test_reports_broken_modules_with_name_and_message(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ngp_cc_broken_cuda.py").write_text(textwrap.dedent(_BROKEN_CUDA))
    (src / "ngp_cc_bad_codegen.py").write_text(textwrap.dedent(_BAD_CODEGEN))
    (src / "ngp_cc_generic.py").write_text(textwrap.dedent(_GENERIC))
    monkeypatch.syspath_prepend(str(src))
    cache = tmp_path / "cache"

    report = cuda_check.check(variants=[], modules=["ngp_cc_broken_cuda", "ngp_cc_bad_codegen", "ngp_cc_generic"],
                              archs=(80,), tile_archs=(), cache_dir=cache, jobs=1)
    assert not report.ok
    failed = {r.module: r for r in report.failures}
    assert set(failed) == {"ngp_cc_broken_cuda", "ngp_cc_bad_codegen", "ngp_cc_generic"}

    nvrtc = failed["ngp_cc_broken_cuda"]
    assert (nvrtc.arch, nvrtc.stage) == (80, "compile")
    assert "ngp_cuda_check_deliberately_broken" in nvrtc.message  # the compiler's own log

    codegen = failed["ngp_cc_bad_codegen"]
    assert codegen.stage in ("codegen", "compile")
    assert "ngp_no_such_builtin" in codegen.message

    generic = failed["ngp_cc_generic"]
    assert generic.stage == "overload" and "fill_any" in generic.message and "scale_any" not in generic.message
    # the overloaded generic kernel in the same module still compiles
    assert [(r.module, r.status) for r in report.compiled] == [("ngp_cc_generic", "compiled")]

    summary = report.summary()
    assert summary["failed"] == 3 and summary["compiled"] == 1
    assert {f["module"] for f in summary["failures"]} == set(failed)
    # only the success left a marker
    assert [p.name.split(".sm")[0] for p in cache.glob("*.ok")] == ["ngp_cc_generic"]
