"""The PySide6 desktop app of semclust: start a run, watch it learn, explore and correct the clusters.

Importing this package pins pyqtgraph to PySide6 before pyqtgraph is imported anywhere.
"""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import PySide6.QtCore  # noqa: E402,F401  (import PySide6 before pyqtgraph picks a binding)
