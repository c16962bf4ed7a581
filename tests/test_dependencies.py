"""Every third-party module the code imports is declared in pyproject.toml.

core/, gui/ and semclust/ may import what ``[project] dependencies`` declares; bench/ also what the
``bench`` and ``test`` extras declare. An import inside ``try: ... except ImportError`` (or
``contextlib.suppress(ImportError)``) is optional and need not be declared: the code runs without it.
Import names map to distributions with ``importlib.metadata.packages_distributions()`` (``PIL`` ->
``pillow``, ``sklearn`` -> ``scikit-learn``), so the check reads the installed environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).parents[1]
FIRST_PARTY = {"semclust", "core", "gui", "bench", "tests"}
OPTIONAL_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {_normalise(re.match(r"[A-Za-z0-9._-]+", r.strip()).group()) for r in requirements}

    extras = project.get("optional-dependencies", {})
    return {
        "dependencies": names(project["dependencies"]),
        "extras": names(extras.get("bench", []) + extras.get("test", [])),
    }


def _catches_import_error(node: ast.AST) -> bool:
    """A ``try`` with an ``except ImportError`` or a ``with contextlib.suppress(ImportError)``."""
    if isinstance(node, ast.Try):
        for handler in node.handlers:
            caught = handler.type
            kinds = caught.elts if isinstance(caught, ast.Tuple) else [caught]
            if any(getattr(k, "id", None) in OPTIONAL_ERRORS for k in kinds):
                return True
    if isinstance(node, ast.With):
        for item in node.items:
            call = item.context_expr
            if (
                isinstance(call, ast.Call)
                and getattr(call.func, "attr", getattr(call.func, "id", None)) == "suppress"
                and any(getattr(a, "id", None) in OPTIONAL_ERRORS for a in call.args)
            ):
                return True
    return False


def _required_imports(path: Path) -> set[str]:
    """Top-level names of the third-party modules ``path`` imports outside an ImportError guard."""
    found: set[str] = set()

    def visit(node: ast.AST, guarded: bool) -> None:
        if not guarded:
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for child in node.body:  # the handlers, else and finally are not guarded
                visit(child, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        inner = guarded or _catches_import_error(node)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return {n for n in found if n not in sys.stdlib_module_names and n not in FIRST_PARTY}


def _undeclared(folders: tuple[str, ...], allowed: set[str]) -> list[str]:
    to_distributions = importlib.metadata.packages_distributions()
    problems = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in sorted(_required_imports(path)):
                distributions = {_normalise(d) for d in to_distributions.get(module, [])}
                where = path.relative_to(ROOT)
                if not distributions:
                    problems.append(f"{where}: {module} (no installed distribution provides it)")
                elif not distributions & allowed:
                    problems.append(f"{where}: {module} (from {', '.join(sorted(distributions))})")
    return problems


def test_product_imports_are_dependencies():
    problems = _undeclared(("core", "gui", "semclust"), _declared()["dependencies"])
    assert not problems, "imported but not in [project] dependencies:\n" + "\n".join(problems)


def test_benchmark_imports_are_declared():
    declared = _declared()
    problems = _undeclared(("bench",), declared["dependencies"] | declared["extras"])
    assert not problems, "imported but not in dependencies or the bench/test extras:\n" + "\n".join(
        problems
    )


def test_an_undeclared_import_is_found(tmp_path, monkeypatch):
    """The check itself: an unguarded tqdm import is reported, a guarded one is not."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(
        "import numpy\nfrom tqdm import tqdm\n"
        "try:\n    import faiss\nexcept ImportError:\n    faiss = None\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _required_imports(tmp_path / "pkg" / "a.py") == {"numpy", "tqdm"}
    assert _undeclared(("pkg",), {"numpy"}) == [f"{Path('pkg/a.py')}: tqdm (from tqdm)"]
