"""semclust: semantic image clustering (SCAN) for folders of unlabelled images, with a desktop explorer.

The installed package is one namespace: ``semclust.core`` (the headless pipeline, no Qt), ``semclust.gui``
(the desktop app) and ``semclust.cli`` (the ``semclust`` command, the only module that reaches both).
In the repository the first two are the top-level folders ``core/`` and ``gui/``; ``pyproject.toml``
maps them into this package.
"""

__version__ = "0.1.0"
