"""The window's layout: side panels as dock widgets, and the window's geometry and dock state kept in
QSettings between sessions.

A dock can be closed, floated, moved to another side or tabbed with another; the View menu shows each
again and restores the default layout.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QWidget

#: Raised when the docks change in a way that an old saved state would misplace.
STATE_VERSION = 2
GEOMETRY_KEY, STATE_KEY = "window/geometry", "window/state"
#: The window's default size, when the screen allows it.
DEFAULT_SIZE = QSize(1400, 900)


def make_dock(window: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea,
              min_width: int = 0) -> QDockWidget:  # fmt: skip
    """A dock the user can close, float and move; ``title`` is its object name for saved states."""
    dock = QDockWidget(title, window)
    dock.setObjectName(title)
    dock.setWidget(widget)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable
                     | QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable)  # fmt: skip
    if min_width:
        dock.setMinimumWidth(min_width)
    window.addDockWidget(area, dock)
    return dock


class VerticalScroll(QScrollArea):
    """Scrolls a panel up and down, never sideways, as wide as the panel's narrowest, and gives its
    wrapped labels the height they need at the width they have (a plain QScrollArea squeezes them
    into their one-line height, and their lines overlap)."""

    def __init__(self, widget: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(widget.minimumSizeHint().width()
                             + self.verticalScrollBar().sizeHint().width() + 4)  # fmt: skip
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's spelling)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit()
        return False

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's spelling)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        layout = self.widget().layout()
        if layout is not None and layout.hasHeightForWidth():
            height = layout.totalHeightForWidth(self.viewport().width())
            if height != self.widget().minimumHeight():
                self.widget().setMinimumHeight(height)


def default_size(window: QWidget) -> QSize:
    """The default size, within the screen's available area (a laptop's 1366x768 less its panels)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return DEFAULT_SIZE
    avail = screen.availableGeometry().size()
    if avail.width() < 1024:  # a headless or odd screen (offscreen's 800x600): keep the default
        return DEFAULT_SIZE
    return DEFAULT_SIZE.boundedTo(avail)


class WindowLayout:
    """Saves and restores a main window's geometry and dock state in ``settings``.

    Args:
        window: the window, with its docks added (their default places are remembered here).
        settings: where the layout is kept.
    """

    def __init__(self, window: QMainWindow, settings: QSettings) -> None:
        self.window, self.settings = window, settings
        self._default = window.saveState(STATE_VERSION)

    def restore(self) -> bool:
        """The saved geometry and dock state, if any; False when there is none (or it is unusable)."""
        geometry, state = self.settings.value(GEOMETRY_KEY), self.settings.value(STATE_KEY)
        restored = False
        if isinstance(geometry, QByteArray | bytes) and geometry:
            restored = self.window.restoreGeometry(QByteArray(geometry))
        if isinstance(state, QByteArray | bytes) and state:
            restored = self.window.restoreState(QByteArray(state), STATE_VERSION) and restored
        return restored

    def save(self) -> None:
        self.settings.setValue(GEOMETRY_KEY, self.window.saveGeometry())
        self.settings.setValue(STATE_KEY, self.window.saveState(STATE_VERSION))

    def reset(self) -> None:
        """Every dock back in its default place, shown and docked."""
        for dock in self.window.findChildren(QDockWidget):
            dock.setFloating(False)
            dock.show()
        self.window.restoreState(self._default, STATE_VERSION)
