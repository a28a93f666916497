"""The import rules of the project, read from the source with ``ast`` (imports inside functions included).

- no import cycle among the project's modules;
- ``ngp_sdk.core`` imports no primitive package (``ngp_sdk.image``, ``ngp_sdk.nerf``, ...), nor the ``ngp_sdk``
  facade, nor ``bridges``;
- a primitive package imports ``ngp_sdk.core`` and itself only: never another primitive, the facade or ``bridges``;
- ``warp_kernels`` imports nothing of ``ngp_sdk`` or ``bridges``; ``ngp_sdk`` imports nothing of ``bridges``;
- no module imports a ``_private`` name from another module;
- optional extras (torch, ray, viser, rosbags, mitsuba, rclpy) are never imported at module level by the packages.

Only explicit imports count (``from a.b import c`` is an edge to ``a.b``, or to ``a.b.c`` when that is a module);
the implicit import of parent packages is Python's doing, not the module's, and is ignored (as import-linter does).
The checker is tested on a small synthetic tree, so a cycle it must see is shown to fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("warp_kernels", "ngp_sdk", "bridges")
SCRIPTS = ("samples", "benchmarks")
OPTIONAL_EXTRAS = ("torch", "ray", "viser", "rosbags", "mitsuba", "rclpy")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: list[tuple[str, list[str], int, bool]] = field(default_factory=list)  # (module, names, line, top)


def module_name(root: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def scan(root: Path, folders: tuple[str, ...]) -> dict[str, Module]:
    """Every module under ``root/folder`` with its explicit imports (relative ones resolved)."""
    modules: dict[str, Module] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            name, is_package = module_name(root, path)
            mod = Module(name, path, is_package)
            tree = ast.parse(path.read_text(), filename=str(path))
            top_level = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                top = id(node) in top_level
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        mod.imports.append((alias.name, [], node.lineno, top))
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = name.split(".") if is_package else name.split(".")[:-1]
                        base = base[: len(base) - (node.level - 1)]
                        target = ".".join(base + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    mod.imports.append((target, [a.name for a in node.names], node.lineno, top))
            modules[name] = mod
    return modules


def edges(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module -> the project modules it imports explicitly."""
    out: dict[str, set[str]] = {m: set() for m in modules}
    for mod in modules.values():
        for target, names, _, _ in mod.imports:
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            if subs:
                out[mod.name].update(subs)
            if target in modules and (not names or len(subs) < len(names)):
                out[mod.name].add(target)
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan); a module importing itself (the
    ``if __name__ == "__main__"`` idiom of :mod:`warp_kernels.cuda_check`) is not a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_of(name: str, primitives: set[str]) -> str:
    """``warp_kernels``, ``core``, ``primitive:<p>``, ``facade`` (the rest of ngp_sdk), ``bridges`` or ``other``."""
    parts = name.split(".")
    if parts[0] == "warp_kernels":
        return "warp_kernels"
    if parts[0] == "bridges":
        return "bridges"
    if parts[0] == "ngp_sdk":
        if len(parts) > 1 and parts[1] == "core":
            return "core"
        if len(parts) > 1 and parts[1] in primitives:
            return f"primitive:{parts[1]}"
        return "facade"
    return "other"


def layer_violations(modules: dict[str, Module], primitives: set[str]) -> list[str]:
    bad = []
    for mod in modules.values():
        src = layer_of(mod.name, primitives)
        for target, _, line, _ in mod.imports:
            if target.split(".")[0] not in PACKAGES:
                continue
            dst = layer_of(target, primitives)
            where = f"{mod.path.relative_to(ROOT) if mod.path.is_relative_to(ROOT) else mod.path}:{line}"
            if src == "warp_kernels" and dst != "warp_kernels":
                bad.append(f"{where}: warp_kernels imports {target}")
            elif src == "core" and dst not in ("core", "warp_kernels"):
                bad.append(f"{where}: core imports {target} (core never imports a primitive, the facade or bridges)")
            elif src.startswith("primitive:") and dst not in ("core", "warp_kernels", src):
                bad.append(f"{where}: {src[10:]} imports {target} (a primitive imports only core and itself)")
            elif src in ("core", "facade") or src.startswith("primitive:"):
                if dst == "bridges":
                    bad.append(f"{where}: ngp_sdk imports {target} (bridges sit on top of ngp_sdk)")
    return bad


def private_imports(modules: dict[str, Module]) -> list[str]:
    bad = []
    for mod in modules.values():
        for target, names, line, _ in mod.imports:
            if target == mod.name or target.split(".")[0] not in PACKAGES:
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{mod.path.relative_to(ROOT)}:{line}: imports private {n} from {target}")
            for part in target.split(".")[1:]:
                if part.startswith("_") and not part.startswith("__"):
                    bad.append(f"{mod.path.relative_to(ROOT)}:{line}: imports the private module {target}")
    return bad


@pytest.fixture(scope="module")
def project() -> dict[str, Module]:
    return scan(ROOT, PACKAGES + SCRIPTS)


#: packages of ngp_sdk that are not primitives: core, and the facade-layer ``batch`` (it runs ``ngp`` commands)
FACADE_PACKAGES = {"core", "batch"}


@pytest.fixture(scope="module")
def primitives() -> set[str]:
    return {p.parent.name for p in (ROOT / "ngp_sdk").glob("*/__init__.py") if p.parent.name not in FACADE_PACKAGES}


def test_the_scan_sees_the_project(project, primitives):
    assert {"image", "nerf", "sdf"} <= primitives
    assert {"ngp_sdk.core.session", "ngp_sdk.nerf.task", "warp_kernels.hash_encoding", "bridges.server"} <= set(project)
    g = edges(project)
    assert "ngp_sdk.core.task" in g["ngp_sdk.core.session"]
    assert {"ngp_sdk.image", "ngp_sdk.nerf", "ngp_sdk.sdf"} <= g["ngp_sdk"]  # the facade registers them


def test_no_import_cycles(project):
    cycles = find_cycles(edges(project))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_layers(project, primitives):
    bad = layer_violations(project, primitives)
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_no_private_names_cross_modules(project):
    bad = private_imports(project)
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_optional_extras_are_not_imported_at_module_level(project):
    bad = [f"{m.path.relative_to(ROOT)}:{line}: {target}" for m in project.values()
           if m.name.split(".")[0] in PACKAGES
           for target, _, line, top in m.imports if top and target.split(".")[0] in OPTIONAL_EXTRAS]
    assert not bad, "optional extras imported at module level:\n" + "\n".join(bad)


# -- the checker itself, on a synthetic tree ---------------------------------------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_checker_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    root = _tree(tmp_path, {
        "ngp_sdk/__init__.py": "",
        "ngp_sdk/core/__init__.py": "",
        "ngp_sdk/core/a.py": "from ngp_sdk.core import b\n",
        "ngp_sdk/core/b.py": "def f():\n    from .c import g\n",
        "ngp_sdk/core/c.py": "import ngp_sdk.core.a\ndef g():\n    pass\n",
        "ngp_sdk/core/d.py": "from ngp_sdk.core.b import f\n",
    })
    cycles = find_cycles(edges(scan(root, ("ngp_sdk",))))
    assert cycles == [["ngp_sdk.core.a", "ngp_sdk.core.b", "ngp_sdk.core.c"]]


def test_checker_finds_layer_and_private_violations(tmp_path):
    root = _tree(tmp_path, {
        "ngp_sdk/__init__.py": "from ngp_sdk import image, nerf\n",
        "ngp_sdk/core/__init__.py": "",
        "ngp_sdk/core/session.py": "def f():\n    from ngp_sdk.image.task import T\n",
        "ngp_sdk/image/__init__.py": "",
        "ngp_sdk/image/task.py": "from ngp_sdk.nerf.field import _helper\nT = 1\n",
        "ngp_sdk/nerf/__init__.py": "",
        "ngp_sdk/nerf/field.py": "def _helper():\n    pass\n",
        "warp_kernels/__init__.py": "",
        "warp_kernels/k.py": "from ngp_sdk.core import session\n",
    })
    mods = scan(root, ("ngp_sdk", "warp_kernels"))
    import tests.test_layering as layering

    old = layering.ROOT
    layering.ROOT = root
    try:
        bad = layer_violations(mods, {"image", "nerf"})
        priv = private_imports(mods)
    finally:
        layering.ROOT = old
    assert any("core imports ngp_sdk.image.task" in b for b in bad)
    assert any("image imports ngp_sdk.nerf.field" in b for b in bad)
    assert any("warp_kernels imports ngp_sdk.core" in b for b in bad)
    assert len(bad) == 3  # the facade may import primitives
    assert priv == ["ngp_sdk/image/task.py:1: imports private _helper from ngp_sdk.nerf.field"]
