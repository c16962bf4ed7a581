"""Small dialogs: the list of skipped files, and non-blocking messages."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from semclust.gui._core import RunChoices, declared, over_the_pixel_limit


class SkippedDialog(QDialog):
    """The files the ingest could not use, with the reason for each."""

    def __init__(self, skipped: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Skipped files")
        self.resize(640, 400)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{len(skipped):,} files were skipped:"))
        table = QTableWidget(len(skipped), 2)
        table.setHorizontalHeaderLabels(["File", "Reason"])
        table.verticalHeader().hide()
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        for r, (path, reason) in enumerate(skipped):
            table.setItem(r, 0, QTableWidgetItem(path))
            table.setItem(r, 1, QTableWidgetItem(reason))
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(table)
        if large := over_the_pixel_limit(skipped):
            label = next(d for d in declared(RunChoices) if d.name == "max_megapixels").param.label
            self.hint = QLabel(
                f"{large:,} of them are over the pixel limit: a larger \u201c{label}\u201d in the run's "
                "settings lets them in."
            )
            self.hint.setWordWrap(True)
            layout.addWidget(self.hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


def show_message(parent: QWidget, title: str, text: str, error: bool = False) -> QMessageBox:
    """Shows a window-modal message without blocking the caller (no nested event loop)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical if error else QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(text)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
