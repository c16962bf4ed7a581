"""The layering, stated as contracts (napari's import-linter rules, checked here with ``ast``).

- core/ imports neither Qt nor the window nor the command line, lazily or not;
- core/ has no import circle, lazy imports included, and ``core/paths.py`` imports nothing of ours;
- in gui/, only ``gui/_core.py`` imports the core;
- the window, the command line and the benchmark use the core's public names only (no ``_name``).
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
QT = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "superqt")


def _module_name(path: Path) -> str:
    """``core/clustering/scan.py`` -> ``semclust.core.clustering.scan`` (pyproject's package map)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] in ("semclust", "bench", "tests") else ["semclust", *parts])


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import of a file, at any depth: ``(module, [names imported from it])``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found.append((node.module, [a.name for a in node.names]))
    return found


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_core_imports_no_qt_gui_or_cli():
    bad = [
        f"{p.relative_to(ROOT)}: {mod}"
        for p in _files("core")
        for mod, _ in _imports(p)
        if mod.split(".")[0] in QT or mod.startswith(("semclust.gui", "semclust.cli"))
    ]
    assert not bad, bad


def test_core_has_no_import_circle():
    modules = {_module_name(p): p for p in _files("core")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for mod, names in _imports(path):
            deps |= {m for m in (mod, *(f"{mod}.{n}" for n in names)) if m in modules}
        graph[name] = deps - {name}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle
    assert graph["semclust.core.paths"] == set()
    assert graph["semclust.core.progress"] == set()


def test_only_gui_core_imports_the_core():
    bad = [
        str(p.relative_to(ROOT))
        for p in _files("gui")
        if p.name != "_core.py" and any(m.startswith("semclust.core") for m, _ in _imports(p))
    ]
    assert not bad, bad


def test_front_ends_use_public_core_names_only():
    bad = [
        f"{p.relative_to(ROOT)}: {mod}.{name}"
        for folder in ("gui", "semclust", "bench")
        for p in _files(folder)
        for mod, names in _imports(p)
        if mod.startswith("semclust.core")
        for name in names
        if name.startswith("_")
    ]
    assert not bad, bad


def test_importing_every_core_module_loads_no_qt():
    modules = sorted(_module_name(p) for p in _files("core"))
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"bad = [m for m in sys.modules if m.split('.')[0] in {QT!r}"
        + " or m.startswith('semclust.gui') or m == 'semclust.cli']\n"
        + "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(modules) >= 25


def test_gui_core_loads_no_keras():
    """The window opens without Keras: every core name it uses imports without it."""
    code = "import sys, semclust.gui._core\nassert 'keras' not in sys.modules, 'keras'\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
