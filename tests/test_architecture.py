"""The layers of docs/architecture.md, checked against the code: a lower layer never imports a
higher one, the shared engine imports no family's module, and each family table is complete."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "posekit"

LAYERS = (
    ("errors", "schema_names", "schema_skeleton", "schema", "schemas", "structures", "geometry",
     "oks", "devices", "visualize"),
    ("data", "config", "media", "tracking"),
    ("codecs",),
    ("inference", "video"),
    ("models",),
    ("tasks",),
    ("engine",),
    ("export", "export_parity", "quantize"),
    ("cli", "cli_infer", "cli_export", "__main__"),
)  # fmt: skip
"""Lowest first; ``posekit/__init__.py`` re-exports from the first layer only."""

FAMILY_MODULES = (
    "posekit.codecs.heatmap",
    "posekit.codecs.simcc",
    "posekit.codecs.regression",
    "posekit.codecs.topdown",
    "posekit.data.crops",
    "posekit.codecs.paf",
    "posekit.codecs.paf_grouping",
    "posekit.codecs.paf_limbs",
    "posekit.codecs.peaks",
    "posekit.models.bottomup",
    "posekit.models.heads.paf",
    "posekit.tasks.bottomup",
    "posekit.inference.bottomup",
    "posekit.inference.topdown",
    "posekit.inference.boxes",
    "posekit.tasks.topdown",
    "posekit.models.topdown",
    "posekit.models.heads.topdown",
)
"""Modules of one family: bottom-up (PAF) or top-down (crops and their codecs)."""

SHARED = (
    "engine/trainer.py",
    "engine/validation.py",
    "engine/evaluate.py",
    "inference/runtime.py",
    "inference/torch_runtime.py",
    "inference/preprocess.py",
    "models/loading.py",
    "models/record.py",
    "tasks/base.py",
    "codecs/base.py",
)
"""Modules that every family shares: they import no family module."""


def _layer(module: str) -> int:
    top = module.split(".")[1]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in any layer of docs/architecture.md")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("posekit"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("posekit")}
    return out


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = _layer(_module(path))
    for name in _imports(path):
        if name == "posekit" or name.startswith("posekit.__"):
            continue
        if (PACKAGE.parent / name.replace(".", "/")).with_suffix(".py").exists() or (
            PACKAGE.parent / name.replace(".", "/")
        ).is_dir():
            assert _layer(name) <= own, f"{_module(path)} (layer {own}) imports {name}"


@pytest.mark.parametrize("relative", SHARED)
def test_shared_modules_import_no_family_module(relative):
    imported = _imports(PACKAGE / relative)
    assert not imported & set(FAMILY_MODULES), relative


def test_every_family_with_a_model_has_a_codec_task_and_predictor():
    from posekit.codecs import CODECS
    from posekit.codecs.base import FAMILIES
    from posekit.inference import PREDICTORS
    from posekit.models.zoo import MODELS
    from posekit.tasks import TASKS

    assert {cls.family for cls in CODECS.values()} <= set(FAMILIES)
    families = {entry.family for entry in MODELS.values()}
    assert families <= set(TASKS) and families <= set(PREDICTORS)
    for entry in MODELS.values():
        assert CODECS[entry.codec["name"]].family == entry.family
