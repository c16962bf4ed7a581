"""Small dialogs: the list of skipped files, semclust's cache of decoded images, and non-blocking
messages."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from semclust.gui._core import (
    RunChoices,
    cache_stores,
    declared,
    describe_store,
    format_bytes,
    over_the_pixel_limit,
    remove_store,
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


class CacheDialog(QDialog):
    """semclust's cache of decoded images, one store per folder and image size (``semclust cache``):
    what each holds, its size on disk and when it was last read; the stale or selected ones can be
    removed. A removed store's folder decodes its images again on its next run; the user's images and
    the fetched weights are never touched."""

    COLUMNS = ("Folder", "Size", "Images", "On disk", "Last used", "Note")

    def __init__(self, parent: QWidget | None = None, cache_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.setWindowTitle("Cache of decoded images")
        self.resize(820, 420)
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.itemSelectionChanged.connect(self._sync)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.remove_selected = QPushButton("Remove selected")
        self.remove_stale = QPushButton()
        self.remove_stale.setToolTip(
            "Remove the stores no run will read again: their folder is gone or was renamed, or "
            "they were written for an older version of the cache."
        )
        for button, role in ((self.remove_stale, QDialogButtonBox.ButtonRole.ActionRole),
                             (self.remove_selected, QDialogButtonBox.ButtonRole.ActionRole)):  # fmt: skip
            buttons.addButton(button, role)
        self.remove_selected.clicked.connect(lambda: self._remove(self._selected()))
        self.remove_stale.clicked.connect(lambda: self._remove(self._stale()))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self, said: str = "") -> None:
        """Lists the stores again; ``said``: what the last removal did."""
        self.stores = cache_stores(self.cache_dir)
        total = format_bytes(sum(s.bytes for s in self.stores))
        self.summary.setText(
            f"{said}{len(self.stores)} stores, {total}. A folder whose store is removed decodes its "
            "images again on its next run; your images and the downloaded weights are never touched."
        )
        self.table.setRowCount(len(self.stores))
        for r, store in enumerate(self.stores):
            folder, note = describe_store(store)
            cells = (folder, f"{store.size} px", "?" if store.images is None else f"{store.images:,}",
                     format_bytes(store.bytes),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(store.last_used)), note)  # fmt: skip
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (1, 2, 3):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
        self._sync()

    def _selected(self) -> list:
        return [self.stores[i.row()] for i in self.table.selectionModel().selectedRows()]

    def _stale(self) -> list:
        return [s for s in self.stores if s.stale]

    def _sync(self) -> None:
        stale = self._stale()
        self.remove_stale.setText(
            f"Remove stale ({len(stale)}, {format_bytes(sum(s.bytes for s in stale))})"
        )
        self.remove_stale.setEnabled(bool(stale))
        self.remove_selected.setEnabled(bool(self._selected()))

    def _remove(self, stores: list) -> None:
        removed = [s for s in stores if remove_store(s)]
        kept = len(stores) - len(removed)
        said = f"Removed {len(removed)}, {format_bytes(sum(s.bytes for s in removed))} freed"
        self.refresh(said + (f"; {kept} kept: being written. " if kept else ". "))


def show_message(parent: QWidget, title: str, text: str, error: bool = False) -> QMessageBox:
    """Shows a window-modal message without blocking the caller (no nested event loop)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical if error else QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(text)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
