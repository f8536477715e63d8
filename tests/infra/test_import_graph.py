"""Imports point one way: no cycles anywhere in the tree, and no stage of the pipeline imports a later one.

Every import counts, wherever it is written: at the top, inside a function (the lazy imports that
keep a cold start cheap) or under `if TYPE_CHECKING:`. A lazy import still couples two modules,
and a cycle hidden in one is still a cycle for the reader.

The domain's stages, in the order a webhook meets them (README "Where things are"); a module may
import from its own stage and from earlier ones only. `ingest` and `retry` are the two flows: they
share a rank but not code. Across the tree, MAY_IMPORT says which package may import which.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "dodo_cio"
SOURCES = {  # import root -> the folders whose modules are importable from it
    LAYER: ["dodo_cio"],
    ROOT / "tools": ["dodo_cio_cli", "dodo_cio_local", "dodo_cio_testdata"],
}
STAGES = {  # subpackage of dodo_cio -> rank
    "platform": 0,
    "receiving": 1,
    "mapping": 2,
    "state": 3,
    "delivery": 4,
    "configuration": 5,
    "ingest": 6,
    "retry": 6,
}
# Which top-level package may import which (besides itself).
MAY_IMPORT = {
    "dodo_cio": set(),
    "handlers": {"dodo_cio"},
    "dodo_cio_cli": {"dodo_cio"},
    "dodo_cio_local": {"dodo_cio", "dodo_cio_cli", "handlers"},
    "dodo_cio_testdata": {"dodo_cio", "dodo_cio_cli", "dodo_cio_local", "handlers"},
    "bench": {"dodo_cio", "dodo_cio_cli", "dodo_cio_local", "dodo_cio_testdata", "handlers"},
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base, packages in SOURCES.items():
        for package in packages:
            for path in sorted((base / package).rglob("*.py")):
                parts = path.relative_to(base).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                found[name] = path
    for function in ("ingest", "retry"):  # both are `app` on Lambda; named apart here
        for path in sorted((ROOT / "functions" / function).glob("*.py")):
            found[f"handlers.{function}.{path.stem}"] = path
    for path in sorted((ROOT / "bench").glob("*.py")):
        found[f"bench.{path.stem}"] = path
    return found


def _resolve(name: str, modules: Mapping[str, Path], importer: str) -> str | None:
    """The first-party module `name` means for `importer`, or None for the standard library and others."""
    if importer.startswith(("handlers.", "bench.")):  # siblings on sys.path: `import customize`, `import common`
        sibling = importer.rsplit(".", 1)[0] + "." + name
        if sibling in modules:
            return sibling
    return name if name in modules else None


def imports(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """module -> the first-party modules it imports (a `from package import module` names the module)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: Iterable[str] = ()
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                submodules = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if _resolve(t, modules, name)] or [node.module]  # else names
            for target in targets:
                resolved = _resolve(target, modules, name)
                if resolved and resolved != name:
                    edges.add(resolved)
        graph[name] = edges
    return graph


def cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "dodo_cio" and len(parts) > 1 and parts[1] in STAGES else None


def _tree(module: str) -> str:
    return module.split(".", 1)[0]


def wrong_way(graph: Mapping[str, set[str]]) -> list[str]:
    """Every edge from a stage to a later (or a sibling) stage, and every edge across the tree's rule."""
    bad: list[str] = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = _stage(source), _stage(target)
            if here and there and here != there and STAGES[there] >= STAGES[here]:
                bad.append(f"{source} -> {target} (stage {here} must not import {there})")
            elif _tree(source) == "dodo_cio" and _tree(target) == "dodo_cio" and here and not there:
                bad.append(f"{source} -> {target} (a stage imports the package root)")
            if _tree(target) != _tree(source) and _tree(target) not in MAY_IMPORT[_tree(source)]:
                bad.append(f"{source} -> {target} ({_tree(source)} must not import {_tree(target)})")
    return bad


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return imports(_modules())


def test_every_domain_module_is_in_a_stage(graph: dict[str, set[str]]) -> None:
    loose = [m for m in graph if _tree(m) == "dodo_cio" and m != "dodo_cio" and _stage(m) is None]
    assert loose == [], "a module of the domain outside the stages' folders: put it where it belongs"


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert cycle(graph) is None


def test_imports_point_one_way(graph: dict[str, set[str]]) -> None:
    assert wrong_way(graph) == []


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    """The two checks on a graph with one of each: they must say so, or the tests above prove nothing."""
    made_up = {
        "dodo_cio.platform.aws": {"dodo_cio.delivery.track"},  # upward
        "dodo_cio.delivery.track": {"dodo_cio.platform.http"},
        "dodo_cio.platform.http": set(),
        "dodo_cio_cli.a": {"dodo_cio_cli.b"},
        "dodo_cio_cli.b": {"dodo_cio_cli.a", "dodo_cio_local.x"},  # a cycle, and the CLI importing the emulator
        "dodo_cio.ingest.service": {"dodo_cio.retry.service"},  # the flows share a rank, not code
        "dodo_cio.retry.service": set(),
        "dodo_cio_local.x": set(),
    }
    assert sorted(set(cycle(made_up) or [])) == ["dodo_cio_cli.a", "dodo_cio_cli.b"]
    assert [line.split(" (")[0] for line in wrong_way(made_up)] == [
        "dodo_cio.ingest.service -> dodo_cio.retry.service",
        "dodo_cio.platform.aws -> dodo_cio.delivery.track",
        "dodo_cio_cli.b -> dodo_cio_local.x",
    ]


def test_the_graph_sees_lazy_and_type_checking_imports(graph: dict[str, set[str]]) -> None:
    """The domain's lazy imports are edges too: the resolver reaches Dodo's API only when it must."""
    assert "dodo_cio.state.dodo_api" in graph["dodo_cio.state.identity"]
    assert "dodo_cio.ingest.service" in graph["handlers.ingest.app"]
