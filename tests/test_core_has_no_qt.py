"""core/ must run without Qt: importing every core module loads no Qt binding and nothing of the GUI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_core_imports_no_qt():
    modules = sorted(
        p.stem for p in (Path(__file__).parents[1] / "core").glob("*.py") if p.stem != "__init__"
    )
    code = (
        "import sys\n"
        + "".join(f"import semclust.core.{m}\n" for m in modules)
        + "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'shiboken6')"
        + " or m.startswith('semclust.gui') or m == 'semclust.cli']\n"
        + "print(len(sys.modules)); assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(modules) >= 10
