"""The layer's requirements.txt and pyproject.toml must declare the same runtime dependencies.

Tests run against pyproject's versions; Lambda runs the layer's. A drift means testing one Powertools and
shipping another.
"""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.cfn import REPO_ROOT

LAYER_REQUIREMENTS = REPO_ROOT / "layers/dodo_cio/requirements.txt"


def _layer_requirements() -> dict[str, Requirement]:
    reqs = {}
    for raw in LAYER_REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            reqs[canonicalize_name(req.name)] = req
    return reqs


def _project_dependencies() -> dict[str, Requirement]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, deps)}


def _pinned_version(req: Requirement) -> str:
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{req} is not pinned with =="
    return specs[0].version


def test_powertools_pinned_to_the_same_version() -> None:
    layer = _layer_requirements()["aws-lambda-powertools"]
    project = _project_dependencies()["aws-lambda-powertools"]
    assert _pinned_version(layer) == _pinned_version(project)
    assert layer.extras == project.extras


def test_every_layer_requirement_is_a_project_dependency_with_the_same_specifier() -> None:
    project = _project_dependencies()
    mismatched = {
        name: (str(req.specifier), str(project[name].specifier) if name in project else None)
        for name, req in _layer_requirements().items()
        if name not in project or req.specifier != project[name].specifier
    }
    assert mismatched == {}, "layer specifier vs pyproject specifier"
