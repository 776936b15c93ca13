"""The layers of DESIGN.md, checked on the source: who may import whom, no import
cycles, no SQLAlchemy below the store, no private names used across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> (import package, layer).
PACKAGES = {
    "core": ("naslab.core", 1),
    "search_spaces": ("naslab.search_spaces", 2),
    "searchers": ("naslab.searchers", 3),
    "predictors": ("naslab.predictors", 3),
    "workers": ("naslab.workers", 3),
    "db": ("naslab.db", 4),
    "naslab": ("naslab", 5),
}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, (package, _) in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    best = ("", 0)
    for package, layer in PACKAGES.values():
        if (module == package or module.startswith(package + ".")) and len(package) > len(
                best[0]):
            best = (package, layer)
    return best[1]


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` of each import (of the module's top level
    only, outside ``if TYPE_CHECKING``, with ``top_level_only``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def test_every_package_is_mapped_to_a_layer():
    assert {m.split(".")[1] for m in MODULES if m.count(".")} >= {
        "core", "search_spaces", "searchers", "predictors", "workers", "db"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_only(module):
    """A module imports its own layer or lower ones (searchers, predictors and workers
    side by side); lazy imports inside functions count too."""
    mine = _layer(module)
    upward = [f"line {line}: {target} (layer {_layer(target)})"
              for target, _, line in _imports(MODULES[module])
              if target.startswith("naslab") and _layer(target) > mine]
    assert not upward, f"{module} (layer {mine}) imports upwards: {upward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) <= 3))
def test_no_sqlalchemy_below_the_store(module):
    found = [f"line {line}: {target}" for target, _, line in _imports(MODULES[module])
             if target.split(".")[0] == "sqlalchemy"]
    assert not found, f"{module} imports SQLAlchemy: {found}"


def test_no_import_cycles():
    """The graph of module-level imports between naslab modules has no cycle."""
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, names, _ in _imports(path, top_level_only=True):
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            # ``from package import submodule`` depends on the submodule only
            targets = submodules if submodules and len(submodules) == len(names) else [
                target, *submodules]
            graph[module].update(t for t in targets if t in MODULES and t != module)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules(module):
    """``from naslab.x import _name`` and ``naslab_module._name`` are refused."""
    path = MODULES[module]
    found = [f"line {line}: {target}.{name}" for target, names, line in _imports(path)
             if target.startswith("naslab") for name in names
             if name.startswith("_") and not name.startswith("__")]
    tree = ast.parse(path.read_text())
    aliases = {a.asname or a.name.split(".")[-1]
               for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
               and node.module.startswith("naslab") for a in node.names
               if f"{node.module}.{a.name}" in MODULES}
    aliases |= {a.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
                for a in node.names if a.name.startswith("naslab") and a.asname}
    found += [f"line {node.lineno}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in aliases and node.attr.startswith("_")
              and not node.attr.startswith("__")]
    assert not found, f"{module} uses private names of other modules: {found}"


#: The size limits of issue 13: modules and functions a reader can hold in mind.
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    """No module over 600 lines, no function over 80 (benchmarks: functions only)."""
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path} has {lines} lines"
    _assert_short_functions(path)


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").glob("*.py")),
                         ids=lambda p: p.name)
def test_benchmark_functions_stay_small(path):
    _assert_short_functions(path)


def _assert_short_functions(path: Path) -> None:
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def _declared_distributions() -> set[str]:
    """Distribution names in pyproject.toml's dependencies and optional dependencies."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"],
             *(s for group in project["optional-dependencies"].values() for s in group)]
    return {re.split(r"[\[<>=!~ ;]", s, maxsplit=1)[0].lower().replace("_", "-")
            for s in specs}


def test_every_third_party_import_is_declared():
    """What the library imports (lazily too) is a declared dependency."""
    import sys
    from importlib.metadata import packages_distributions

    providers = packages_distributions()
    declared = _declared_distributions()
    missing = {}
    for module, path in MODULES.items():
        for target, _, line in _imports(path):
            top = target.split(".")[0]
            if top in sys.stdlib_module_names or top in ("naslab", "__future__"):
                continue
            dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
            if not dists & declared:
                missing.setdefault(top, f"{module} line {line}")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
