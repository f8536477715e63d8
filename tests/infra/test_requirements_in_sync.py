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


def test_every_layer_requirement_is_pinned_and_a_project_dependency_with_the_same_specifier_and_extras() -> None:
    project, layer = _project_dependencies(), _layer_requirements()
    assert "aws-lambda-powertools" in layer
    mismatched = {
        name: (str(req), str(project[name]) if name in project else None)
        for name, req in layer.items()
        if name not in project or (req.specifier, req.extras) != (project[name].specifier, project[name].extras)
    }
    assert mismatched == {}, "layer requirement vs pyproject dependency"
    unpinned = [str(req) for req in layer.values() if [s.operator for s in req.specifier] != ["=="]]
    assert unpinned == [], "the layer ships one exact version"
