"""The engine and the Slicer module import only downward: a declared layer order, checked with `ast`.

A group is a top-level module or subpackage (`mstkd.training`, `MSTKDSegmentLib.logic`). A module
may import its own group or any group of a lower layer, never one beside it or above it; a new
upward import fails here, with the line that made it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A group imports only from its own group and from the layers below its own.
ENGINE_LAYERS: Tuple[Tuple[str, ...], ...] = (
    ("mstkd", "mstkd.errors"),
    ("mstkd.files", "mstkd.progress", "mstkd.nifti_check"),
    ("mstkd.conventions", "mstkd.typed_config", "mstkd.imageio", "mstkd.resources"),
    ("mstkd.lesionwise",),
    (
        "mstkd.devices",
        "mstkd.targets",
        "mstkd.intensity",
        "mstkd.bias_field",
        "mstkd.metrics",
        "mstkd.figures",
        "mstkd.cases",
        "mstkd.trust",
        "mstkd.dicom_series",
    ),
    ("mstkd.splits", "mstkd.preprocess", "mstkd.phantom"),
    ("mstkd.models",),
    ("mstkd.losses",),
    ("mstkd.experiment",),
    ("mstkd.checkpoint", "mstkd.prediction"),
    ("mstkd.training", "mstkd.inference"),
    ("mstkd.evaluation", "mstkd.bench"),
    ("mstkd.study",),
    ("mstkd.cli",),
    ("mstkd.__main__",),
)
# The Slicer module sits on top of the whole engine; within it, the Lib's modules, then the shell.
SLICER_LAYERS: Tuple[Tuple[str, ...], ...] = (
    (
        "MSTKDSegmentLib.engine",
        "MSTKDSegmentLib.dependencies",
        "MSTKDSegmentLib.process",
        "MSTKDSegmentLib.results",
        "MSTKDSegmentLib.notes",
        "MSTKDSegmentLib.sample",
    ),
    (
        "MSTKDSegmentLib.sequences",
        "MSTKDSegmentLib.models",
        "MSTKDSegmentLib.volumes",
        "MSTKDSegmentLib.service",
        "MSTKDSegmentLib.dicom",
    ),
    ("MSTKDSegmentLib.marks",),
    ("MSTKDSegmentLib.logic",),
    ("MSTKDSegmentLib.panel",),
    ("MSTKDSegmentLib.render",),
    ("MSTKDSegmentLib",),
    ("MSTKDSegment",),
)
LAYERS = ENGINE_LAYERS + SLICER_LAYERS
PROJECT = ("mstkd", "MSTKDSegmentLib", "MSTKDSegment")


def source_files() -> Iterator[Tuple[str, Path]]:
    """(module name, file) of every Python file of the engine and the Slicer module."""
    for base, package in ((ROOT / "Training", "mstkd"), (ROOT / "MSTKDSegment", "MSTKDSegmentLib")):
        for path in sorted((base / package).rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path
    yield "MSTKDSegment", ROOT / "MSTKDSegment" / "MSTKDSegment.py"


def imports(module: str, path: Path, roots: Tuple[str, ...] = PROJECT) -> Iterator[Tuple[str, int]]:
    """(imported module, line) of every import in a file from the packages `roots`, lazy ones included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.split(".")[0] in roots:
                yield name, node.lineno


def layer_of(module: str) -> Optional[Tuple[int, str]]:
    """(layer index, group) of a module: the longest declared group that holds it."""
    best = None
    for index, groups in enumerate(LAYERS):
        for group in groups:
            holds = module == group or module.startswith(group + ".")
            if holds and (best is None or len(group) > len(best[1])):
                best = (index, group)
    return best


def graph() -> Dict[str, List[Tuple[str, int]]]:
    """Each project module's imports of project modules."""
    return {module: list(imports(module, path)) for module, path in source_files()}


def test_every_module_belongs_to_a_declared_layer():
    undeclared = sorted(module for module in graph() if layer_of(module) is None)
    assert not undeclared, f"add these to a layer of {__name__}: {undeclared}"


def test_no_module_imports_beside_or_above_its_layer():
    files = dict(source_files())
    wrong = []
    for module, imported in graph().items():
        own = layer_of(module)
        for name, line in imported:
            target = layer_of(name)
            assert own is not None and target is not None, (module, name)
            if target[1] != own[1] and target[0] >= own[0]:
                where = files[module].relative_to(ROOT)
                wrong.append(f"{where}:{line} ({own[1]}, layer {own[0]}) imports {name} (layer {target[0]})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_the_slicer_module_reaches_no_torch_import():
    """The panel must open before PyTorch is installed; the engine's child process is what needs it."""
    files = dict(source_files())
    edges = graph()
    needs_torch = {m for m, path in files.items() if any(imports(m, path, ("torch",)))}
    changed = True
    while changed:
        reached = {
            m for m, imported in edges.items() if any(_executed(n, files) & needs_torch for n, _ in imported)
        }
        changed = not reached <= needs_torch
        needs_torch |= reached
    slicer_side = sorted(m for m in needs_torch if m.startswith("MSTKDSegment"))
    assert not slicer_side, f"these reach an import of torch: {slicer_side}"


def _executed(name: str, files: Dict[str, Path]) -> set:
    """The modules of ours that importing `name` runs: it and every package above it."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(files)


def test_the_check_sees_an_upward_import(tmp_path):
    """The walk resolves relative and lazy imports, so the rule cannot pass by not seeing them."""
    path = tmp_path / "example.py"
    path.write_text("def f():\n    from ..cli import main\n    import mstkd.training.trainer\n")
    found = list(imports("mstkd.models.example", path))
    assert found == [("mstkd.cli", 2), ("mstkd.training.trainer", 3)]
    assert layer_of("mstkd.cli")[0] > layer_of("mstkd.models.example")[0]
