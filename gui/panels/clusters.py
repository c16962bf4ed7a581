"""The clusters: a table (name, with a suggested name's confidence; size, majority label, purity, mean
confidence); a line saying why clusters have no suggested names, when they have none; for the chosen
cluster, its prototypes and then all its members page by page, most confident first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QSplitter,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from semclust.gui import palette
from semclust.gui._core import METHOD_TITLES, LookAlike, close_said, close_shown_said
from semclust.gui.dialogs import show_message
from semclust.gui.panels.neighbours import configure_grid
from semclust.gui.session import Session
from semclust.gui.thumbnails import ThumbnailGrid, ThumbnailLoader

COLUMNS = ("Cluster", "Size", "Majority", "Purity", "Confidence")
HEADER_TIPS = {
    "Cluster": (
        "Number and name. A suggested name ends with its confidence: the share of the cluster's "
        "prototypes that voted for its class (ImageNet classes of EfficientNet-Lite2; nouns of "
        "CLIP / SigLIP). Above 50%: one name; otherwise the classes' group that holds above 55% "
        "('bovid: ox / ibex'), else 'mixed: a / b'. A name you give has none."
    ),
    "Size": "Images in the cluster, after your corrections.",
    "Majority": "Majority label: the true label most of its images have (when the images have "
    "labels).",
    "Purity": "The share of its images that have its majority label.",
    "Confidence": "Mean confidence: the model's mean probability for this cluster over the images "
    "it put there (images you moved are left out; – for a cluster you made).",
}
PAGE = 120
MIN_COLUMNS = 3  # thumbnail columns the images need beside the table; fewer, and they go below it
TABLE_ROWS = 8  # the table's rows shown above the images when they are below it
#: The narrowest the name column gets (longer names are elided; their tooltip holds them whole), and
#: the widest the majority label's.
NAME_WIDTH, LABEL_WIDTH = 110, 100


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (kept under UserRole when it shows a text), so that cluster 10
    comes after cluster 9 and 100% after 50%."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        role = Qt.ItemDataRole.UserRole
        mine, theirs = self.data(role), other.data(role)
        if mine is None or theirs is None:
            mine = self.data(Qt.ItemDataRole.DisplayRole) if mine is None else mine
            theirs = other.data(Qt.ItemDataRole.DisplayRole) if theirs is None else theirs
        try:
            return mine < theirs
        except TypeError:
            return str(mine) < str(theirs)


@dataclass(frozen=True)
class _ShownInstead:
    """A close call whose other clusters the Clusters tab's button asked for: while the run of the
    same folder and number of clusters shows them (or they are on their way), the row offers the
    kept ones back."""

    method: str
    kept: str
    folder: Path
    clusters: int

    def still_of(self, run) -> bool:
        """Whether ``run`` is the same folder and number of clusters, with the other method or the
        label-free choice (before the other method's run, or after going back)."""
        return (
            run.paths.root == self.folder
            and run.config.method in ("auto", self.method)
            and run.predicted_clusters == self.clusters
        )


def _item(value, text: str | None = None) -> QTableWidgetItem:
    item = _Item()
    item.setData(Qt.ItemDataRole.DisplayRole, value if text is None else text)
    if text is not None:
        item.setData(Qt.ItemDataRole.UserRole, value)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def choose_cluster(parent: QWidget, session: Session, title: str, exclude: int = -1) -> int | None:
    """Asks the user for a cluster; None if cancelled."""
    options = [c for c in range(session.n_clusters) if c != exclude]
    names = [f"{c}: {session.cluster_name(c)}" for c in options]
    name, ok = QInputDialog.getItem(parent, title, "Cluster:", names, 0, False)
    return options[names.index(name)] if ok and name in names else None


class ClustersPanel(QWidget):
    """Cluster table with rename, merge and move, and the chosen cluster's images."""

    clusterChosen = Signal(int)
    #: The user asked for another method's clusters (the close call's button): its registry name.
    methodPicked = Signal(str)

    def __init__(self, session: Session, loader: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self._page = 0
        self._split_moved = False  # by the user: then the panel no longer places it
        self._members = np.zeros(0, dtype=int)
        layout = QVBoxLayout(self)
        split = QSplitter(Qt.Orientation.Horizontal)
        layout.addWidget(split)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, title in enumerate(COLUMNS):
            if title in HEADER_TIPS:
                self.table.horizontalHeaderItem(c).setToolTip(HEADER_TIPS[title])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the name: what is left
        header.setStretchLastSection(False)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.naming_note = QLabel("")
        self.naming_note.setWordWrap(True)
        self.naming_note.setStyleSheet("color: #666;")
        self.naming_note.hide()
        lv.addWidget(self.naming_note)
        self.hint = QWidget()  # two clusters that look like one group, and a button to merge them
        hint_row = QHBoxLayout(self.hint)
        hint_row.setContentsMargins(0, 0, 0, 0)
        self.hint_text = QLabel("")
        self.hint_text.setWordWrap(True)
        self.hint_merge = QPushButton("")
        self.hint_dismiss = QPushButton("Not one group")
        self.hint_dismiss.setToolTip(
            "Stop offering these two clusters; kept with your corrections (Ctrl+Z undoes it)."
        )
        hint_row.addWidget(self.hint_text, 1)
        hint_row.addWidget(self.hint_merge)
        hint_row.addWidget(self.hint_dismiss)
        self.hint.hide()
        self._hint: LookAlike | None = None
        lv.addWidget(self.hint)
        self.close_call = QWidget()  # auto's choice was close: another method's clusters, one click
        close_row = QHBoxLayout(self.close_call)
        close_row.setContentsMargins(0, 0, 0, 0)
        self.close_call_text = QLabel("")
        self.close_call_text.setWordWrap(True)
        self.close_call_show = QPushButton("Show its clusters")
        close_row.addWidget(self.close_call_text, 1)
        close_row.addWidget(self.close_call_show)
        self.close_call.hide()
        self._close_call: tuple[str, float, str] | None = None
        self._shown_instead: _ShownInstead | None = None
        lv.addWidget(self.close_call)
        lv.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.rename_button = QPushButton("Rename…")
        self.merge_button = QPushButton("Merge into…")
        self.move_button = QPushButton("Move here")
        self.split_button = QPushButton("Split…")
        self.rename_button.setToolTip(
            "Give the cluster a name (or double-click its row); exports use it."
        )
        self.merge_button.setToolTip("Move every image of this cluster into another one.")
        self.move_button.setToolTip(
            "Move the selected images (map or grids) into this cluster (a correction)."
        )
        self.split_button.setToolTip(
            "Cluster this cluster's images again (K-means on their features) into parts: the "
            "largest keeps the number, the others become new clusters. Undo restores it."
        )
        for b in (self.rename_button, self.merge_button, self.move_button, self.split_button):
            buttons.addWidget(b)
        lv.addLayout(buttons)
        split.addWidget(left)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        self.proto_title = QLabel("Choose a cluster to see its images.")
        self.proto_title.setWordWrap(True)
        rv.addWidget(self.proto_title)
        self.prototypes = ThumbnailGrid(loader)
        self.prototypes.setFixedHeight(self.prototypes.size_for(1, 1).height())
        self.prototypes.setFlow(ThumbnailGrid.Flow.LeftToRight)
        self.prototypes.setWrapping(False)
        configure_grid(self.prototypes, session, one_cluster=True)
        rv.addWidget(self.prototypes)
        pager = QHBoxLayout()
        self.members_title = QLabel("")
        self.members_title.setWordWrap(True)
        rv.addWidget(self.members_title)
        self.order = QComboBox()
        self.order.addItems(["Most confident first", "Least confident first"])
        self.order.setToolTip(
            "Least confident first lists the images the model is least sure of: the ones to check."
        )
        self.order.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.order.setMinimumContentsLength(8)
        self.prev_button = QPushButton("◀")
        self.next_button = QPushButton("▶")
        for button in (self.prev_button, self.next_button):
            button.setFixedWidth(button.fontMetrics().horizontalAdvance("◀") + 24)
        self.prev_button.setToolTip("The previous page of members.")
        self.next_button.setToolTip("The next page of members.")
        pager.addWidget(self.order, 1)
        pager.addWidget(self.prev_button)
        pager.addWidget(self.next_button)
        rv.addLayout(pager)
        self.members = ThumbnailGrid(loader, multi=True)
        self.members.setToolTip("Ordered by the model's confidence; see the order menu above.")
        configure_grid(self.members, session, one_cluster=True)
        rv.addWidget(self.members, 1)
        split.addWidget(right)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(1, 1)
        self.split = split
        split.splitterMoved.connect(lambda *_: setattr(self, "_split_moved", True))

        self.table.itemSelectionChanged.connect(self._on_row)
        self.table.itemDoubleClicked.connect(lambda *_: self.rename())
        self.rename_button.clicked.connect(lambda: self.rename())
        self.merge_button.clicked.connect(lambda: self.merge())
        self.move_button.clicked.connect(lambda: self.move_selection())
        self.split_button.clicked.connect(lambda: self.split_cluster())
        self.hint_merge.clicked.connect(self.merge_look_alike)
        self.hint_dismiss.clicked.connect(self.dismiss_look_alike)
        self.close_call_show.clicked.connect(self._show_close_call_clusters)
        self.order.currentIndexChanged.connect(lambda: self._show_cluster(self.chosen()))
        self.prev_button.clicked.connect(lambda: self.show_page(self._page - 1))
        self.next_button.clicked.connect(lambda: self.show_page(self._page + 1))
        for grid in (self.prototypes, self.members):
            grid.activated_image.connect(session.set_current)
        self.members.selected_images.connect(self._on_members_selected)
        session.runChanged.connect(self.refresh)
        session.assignmentChanged.connect(self.refresh)
        session.selectionChanged.connect(self._sync_buttons)
        self.refresh()

    # -- state ------------------------------------------------------------------------------------
    def chosen(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return -1
        return int(self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole))

    def choose(self, cluster: int) -> None:
        for r in range(self.table.rowCount()):
            if int(self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)) == cluster:
                self.table.selectRow(r)
                return

    def refresh(self) -> None:
        s = self.session
        keep = self.chosen()
        self.table.setSortingEnabled(False)
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        note = s.naming_note() if s.clustered or s.run is None else "No clusters yet."
        self.naming_note.setText(note)
        self.naming_note.setToolTip(note)
        self.naming_note.setVisible(bool(note))
        self._show_hint(s.look_alike())
        self._show_close_call()
        if not s.clustered:
            self.table.blockSignals(False)
            self._show_cluster(-1)
            self._sync_buttons()
            return
        stats = s.summary()
        self.table.setRowCount(len(stats))
        for r, st in enumerate(stats):
            named = s.name_confidence(st.cluster)
            shown = f"{st.cluster}: {s.cluster_name(st.cluster)}"
            name = _item(st.cluster, shown if named is None else f"{shown} · {named:.0%}")
            name.setData(Qt.ItemDataRole.DecorationRole, palette.color(st.cluster, s.n_clusters))
            name.setToolTip(shown)
            if named is not None:
                name.setToolTip(
                    f"{shown}\nSuggested name: {named:.0%} of the prototypes voted for its (first) "
                    "class, or for a class of its group."
                )
            cells = [
                name,
                _item(int(st.size)),
                _item(st.majority_label or "–"),
                _item(-1.0, "–") if st.purity is None else _item(st.purity, f"{st.purity:.0%}"),
                _item(-1.0, "–") if st.mean_confidence is None
                else _item(st.mean_confidence, f"{st.mean_confidence:.2f}"),
            ]  # fmt: skip
            cells[2].setToolTip(st.majority_label or "")
            for c, item in enumerate(cells):
                if st.size == 0:
                    item.setForeground(QColor("#999"))
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self._fit_columns()
        self.choose(keep)
        self.table.blockSignals(False)
        self._show_cluster(self.chosen(), keep_page=True)
        self._sync_buttons()

    def _fit_columns(self) -> None:
        """Every column shown whole but the name's, which takes the rest and elides (the table is at
        least wide enough for all of them; the cell's tooltip holds the whole name)."""
        table = self.table
        for c in range(1, len(COLUMNS)):
            table.resizeColumnToContents(c)
        table.setColumnWidth(2, min(table.columnWidth(2), LABEL_WIDTH))
        width = NAME_WIDTH + sum(table.columnWidth(c) for c in range(1, len(COLUMNS)))
        bar = table.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        table.setMinimumWidth(width + bar + 2 * table.frameWidth())
        self._orient()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._orient()

    def _orient(self) -> None:
        """The images beside the table where they get at least ``MIN_COLUMNS`` columns of
        thumbnails there, else below it: on a laptop with both side panels open the space beside
        the table held one column."""
        beside = self.table.minimumWidth() + self.members.size_for(MIN_COLUMNS, 1).width()
        wanted = Qt.Orientation.Horizontal if self.width() >= beside else Qt.Orientation.Vertical
        if self.split.orientation() != wanted:
            self.split.setOrientation(wanted)
            self._split_moved = False
        if not self._split_moved:
            self._place_split()

    def _place_split(self) -> None:
        """The table its minimum width beside the images, or its rows (up to ``TABLE_ROWS``) above
        them; the images get the rest (until the user moves the handle)."""
        if self.split.orientation() == Qt.Orientation.Horizontal:
            first = self.table.minimumWidth()
        else:
            table = self.table
            rows = min(max(table.rowCount(), 1), TABLE_ROWS)
            height = rows * (
                table.rowHeight(0)
                if table.rowCount()
                else table.verticalHeader().defaultSectionSize()
            )
            height += table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
            left = self.split.widget(0)  # the table, its note and its buttons
            first = height + left.sizeHint().height() - table.sizeHint().height()
        self.split.setSizes([first, 10_000])

    def _on_row(self) -> None:
        c = self.chosen()
        self._show_cluster(c)
        self._sync_buttons()
        if c >= 0:
            self.clusterChosen.emit(c)

    def _show_cluster(self, c: int, keep_page: bool = False) -> None:
        s = self.session
        if c < 0 or s.run is None:
            self._members = np.zeros(0, dtype=int)
            self.proto_title.setText("Choose a cluster to see its images.")
            self.prototypes.set_items([])
            self.members.set_items([])
            self.members_title.setText("")
            self._sync_pager()
            return
        protos, how = s.prototypes(c)
        self.proto_title.setText(f"Prototypes of {s.cluster_name(c)} ({how}):")
        self.prototypes.set_items(protos)
        self._members = s.members(c, least_confident_first=self.least_confident_first)
        self.show_page(self._page if keep_page else 0)

    @property
    def least_confident_first(self) -> bool:
        return self.order.currentIndex() == 1

    def show_page(self, page: int) -> None:
        pages = max(1, -(-len(self._members) // PAGE))
        self._page = max(0, min(page, pages - 1))
        start = self._page * PAGE
        chunk = self._members[start : start + PAGE]
        self.members.set_items(chunk)
        if len(self._members):
            self.members_title.setText(
                f"Members {start + 1}–{start + len(chunk)} of {len(self._members):,}, "
                f"{'least' if self.least_confident_first else 'most'} confident first "
                f"(page {self._page + 1} of {pages})"
            )
        else:
            self.members_title.setText("This cluster is empty.")
        self._sync_pager()

    def _sync_pager(self) -> None:
        pages = max(1, -(-len(self._members) // PAGE))
        self.prev_button.setEnabled(self._page > 0)
        self.next_button.setEnabled(self._page < pages - 1)

    def _show_close_call(self) -> None:
        """The run's close call (another method scored nearly as well, with other clusters), when
        the run chose among methods (``auto``) and made one; once its button has shown the other
        method's clusters, the same row offers the label-free choice's clusters back."""
        run = self.session.run
        close = run.close_alternative if run is not None else None
        shown = self._shown_instead
        if shown is not None and run is not None and not shown.still_of(run):
            self._shown_instead = shown = None  # another folder, method or k: nothing to go back to
        back = shown is not None and run is not None and close is None
        back = back and run.config.method == shown.method
        self._close_call = close
        self.close_call.setVisible(close is not None or back)
        if close:
            self.close_call_text.setText(close_said(*close, METHOD_TITLES))
            self.close_call_show.setText("Show its clusters")
            self.close_call_show.setToolTip(
                "Clusters the run again with that method, from its kept features (seconds); your "
                "corrections of these clusters are set aside. The same row then brings the kept "
                "clusters back."
            )
        elif back:
            self.close_call_text.setText(close_shown_said(shown.method, shown.kept, METHOD_TITLES))
            self.close_call_show.setText("Back to the kept clusters")
            self.close_call_show.setToolTip(
                "Clusters the run again with Method: Best of several methods, the label-free "
                "choice, from its kept features (seconds)."
            )

    def _show_close_call_clusters(self) -> None:
        run = self.session.run
        if self._close_call is not None and run is not None:
            method, _, kept = self._close_call
            self._shown_instead = _ShownInstead(
                method, kept, run.paths.root, run.predicted_clusters
            )
            self.methodPicked.emit(method)
        elif self._shown_instead is not None:
            self.methodPicked.emit("auto")  # the same choice again: the kept clusters

    @property
    def look_alike(self) -> LookAlike | None:
        """The two clusters the merge hint offers now (refreshed with the run and its corrections)."""
        return self._hint

    def _show_hint(self, pair: LookAlike | None) -> None:
        self._hint = pair
        self.hint.setVisible(pair is not None)
        if pair is None:
            return
        s = self.session
        self.hint_text.setText(pair.describe())
        self.hint.setToolTip(
            f"{pair.merged}: {s.cluster_name(pair.merged)}\n{pair.into}: {s.cluster_name(pair.into)}"
            "\nMost images have their nearest neighbours in their own cluster; these two share "
            "many. Look at both before merging (Ctrl+Z undoes it)."
        )
        self.hint_merge.setText(f"Merge {pair.merged} into {pair.into}")

    def dismiss_look_alike(self) -> None:
        """The hint's two clusters are not one group: the next pair, if any, is offered."""
        if self._hint is not None:
            self.session.keep_apart(self._hint.into, self._hint.merged)  # the tab refreshes

    def merge_look_alike(self) -> None:
        """Merges the hint's smaller cluster into the larger (one step to undo)."""
        if self._hint is not None:
            self.session.merge(self._hint.merged, self._hint.into)

    def _sync_buttons(self) -> None:
        c = self.chosen()
        self.rename_button.setEnabled(c >= 0)
        self.merge_button.setEnabled(c >= 0 and self.session.n_clusters > 1)
        self.move_button.setEnabled(c >= 0 and len(self.session.selection) > 0)
        self.split_button.setEnabled(c >= 0 and self.session.editable)

    def _on_members_selected(self, images) -> None:
        if len(images):
            self.session.set_selection(images)

    # -- corrections ------------------------------------------------------------------------------
    def rename(self, name: str | None = None) -> None:
        c = self.chosen()
        if c < 0:
            return
        if name is None:
            old = self.session.cluster_name(c)
            name, ok = QInputDialog.getText(self, "Rename cluster", "Name:", text=old)
            if not ok:
                return
        self.session.rename(c, name)

    def merge(self, target: int | None = None) -> None:
        c = self.chosen()
        if c < 0:
            return
        if target is None:
            target = choose_cluster(
                self, self.session, f"Merge {self.session.cluster_name(c)} into", c
            )
        if target is not None:
            self.session.merge(c, target)
            self.choose(target)

    def move_selection(self) -> None:
        c = self.chosen()
        if c >= 0:
            self.session.move(self.session.selection, c)

    def split_cluster(self, parts: int | None = None, cluster: int | None = None) -> list[int]:
        """Splits the chosen cluster (or ``cluster``) into ``parts``, asked when not given (2 by
        default); returns the clusters of the parts ([] when nothing was done)."""
        c = self.chosen() if cluster is None else int(cluster)
        s = self.session
        if c < 0 or not s.editable:
            return []
        size = int((s.assignment == c).sum())
        if parts is None:
            if size < 2:
                show_message(self, "Split cluster", f"{s.cluster_name(c)} has too few images.")
                return []
            parts, ok = QInputDialog.getInt(
                self, "Split cluster", f"Split {c}: {s.cluster_name(c)} ({size:,} images) into "
                "how many parts?", 2, 2, min(size, 50),
            )  # fmt: skip
            if not ok:
                return []
        try:
            made = s.split(c, parts)
        except ValueError as exc:
            show_message(self, "Cannot split", str(exc), error=True)
            return []
        self.choose(c)
        return made
