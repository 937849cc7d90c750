"""Imports go one way: between packages, and between the layers of the engine core.

Every import counts, at the top, under `TYPE_CHECKING` or inside a function, so a lazy
import cannot hide a cycle. The rules (README "Layout"):
- `specroute.routes` imports nothing of ours; `specroute.cache` only `specroute.routes`;
- `specroute.engine.llm` nothing of the engine core;
- the engine core nothing of `specroute.engine.report`;
- inside the core, a module imports only its own layer or lower ones (`CORE_LAYERS`), and
  the core's imports have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "specroute.engine": ROOT / "engine",
    "specroute.routes": ROOT / "routes",
    "specroute.cache": ROOT / "cache",
}

# Lowest first. Data and definitions -> build-time graph -> run state -> predicted values ->
# the step path -> speculation -> results -> schedulers -> the runnable Flow -> the asyncio
# bridge at the edge.
CORE_LAYERS = (
    ("_mode", "_observer", "_step", "_stream", "_trace", "_usage", "_model_predictor"),
    ("_graph",),
    ("_state",),
    ("_predicted",),
    ("_call",),
    ("_routing",),
    ("_results",),
    ("_sequential", "_run"),
    ("_checkpoint", "_expand", "_map", "_loop"),
    ("_flow",),
    ("_asyncio",),
    ("__init__",),
)
RANK = {name: rank for rank, names in enumerate(CORE_LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__" and len(parts) > 1:
                parts = parts[:-1]
            name = ".".join((package, *parts)) if parts != ("__init__",) else package
            modules[name] = path
    return modules


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every `specroute.*` module that `module` imports, resolved to an absolute name."""
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                target = ".".join([*prefix, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # `from . import _x` names a module, not an attribute.
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
    return {name for name in found if name.startswith("specroute")}


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def _is_core(module: str) -> bool:
    parts = module.split(".")
    return parts[:2] == ["specroute", "engine"] and (len(parts) == 2 or parts[2] in RANK)


def test_every_module_was_read() -> None:
    assert "specroute.engine._run" in MODULES
    assert "specroute.engine.llm._client" in MODULES
    assert any("specroute.routes" in targets for targets in IMPORTS.values())


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("specroute.routes")))
def test_routes_imports_nothing_of_ours(module: str) -> None:
    assert {t for t in IMPORTS[module] if not t.startswith("specroute.routes")} == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("specroute.cache")))
def test_cache_imports_only_routes(module: str) -> None:
    outside = {
        t for t in IMPORTS[module] if not t.startswith(("specroute.cache", "specroute.routes"))
    }
    assert outside == set()


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m.startswith("specroute.engine.llm"))
)
def test_llm_imports_nothing_of_the_core(module: str) -> None:
    assert {t for t in IMPORTS[module] if _is_core(t) and t != "specroute.engine"} == set()
    assert "specroute.engine" not in IMPORTS[module]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _is_core(m)))
def test_core_imports_no_report_and_no_higher_layer(module: str) -> None:
    rank = RANK[module.split(".")[2]] if module != "specroute.engine" else RANK["__init__"]
    for target in IMPORTS[module]:
        assert not target.startswith("specroute.engine.report"), f"{module} imports {target}"
        # The package gathers every layer: importing it is importing the top one.
        assert target != "specroute.engine" or module == "specroute.engine", (
            f"{module} imports the package specroute.engine; import the module that defines "
            "the name"
        )
        if _is_core(target) and target != "specroute.engine":
            layer = RANK[target.split(".")[2]]
            assert layer <= rank, f"{module} (layer {rank}) imports {target} (layer {layer})"


def test_every_core_module_has_a_layer() -> None:
    core = {path.stem for path in (ROOT / "engine").glob("_*.py")}
    assert core - set(RANK) == set(), "give each new engine module a place in CORE_LAYERS"


def test_no_import_cycles_inside_packages() -> None:
    graph = {m: {t for t in IMPORTS[m] if t in MODULES and t != m} for m in MODULES}
    # Package __init__ files only gather names; edges into them would make every
    # `from specroute.routes import X` look like a cycle through the package.
    graph = {
        m: {t for t in targets if MODULES[t].name != "__init__.py"} for m, targets in graph.items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
