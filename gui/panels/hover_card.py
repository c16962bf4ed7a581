"""A card that follows the mouse over a plot: an image's thumbnail and a caption, kept inside the plot."""

from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


class HoverCard(QFrame):
    """A thumbnail (optional) above a caption, shown beside the mouse: below and right of it, or on the
    other side where its parent widget ends."""

    GAP = 16

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("hovercard")
        self.setStyleSheet(
            "#hovercard { background: rgba(255,255,255,235); border: 1px solid #888; }"
        )
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        self.image = QLabel()
        self.text = QLabel()
        box.addWidget(self.image)
        box.addWidget(self.text)
        self.hide()

    def show_near(self, pos: QPoint, text: str, pixmap: QPixmap | None = None) -> None:
        """Shows ``text`` (under ``pixmap`` when given) beside ``pos``, in the parent's coordinates."""
        if pixmap is None:
            self.image.clear()
        else:
            self.image.setPixmap(pixmap)
        self.text.setText(text)
        self.adjustSize()
        self.place(pos)
        self.show()
        self.raise_()

    def place(self, pos: QPoint) -> None:
        """Moves the card beside ``pos`` (the mouse), inside the parent widget."""
        size, bounds = self.size(), self.parentWidget().rect()
        x, y = pos.x() + self.GAP, pos.y() + self.GAP
        if x + size.width() > bounds.right():
            x = pos.x() - self.GAP - size.width()
        if y + size.height() > bounds.bottom():
            y = pos.y() - self.GAP - size.height()
        self.move(max(0, x), max(0, y))
