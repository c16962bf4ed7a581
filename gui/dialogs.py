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
