"""Image grids that follow the session: the current image's nearest neighbours, and the selection."""

from __future__ import annotations

from pathlib import PurePath

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from semclust.gui import palette
from semclust.gui.session import Session
from semclust.gui.thumbnails import ThumbnailGrid, ThumbnailLoader

#: Room left on each side of a caption in its grid cell.
CAPTION_MARGIN = 6


def configure_grid(grid: ThumbnailGrid, session: Session, one_cluster: bool = False) -> None:
    """Captions, tooltips and cluster tints for a grid of the session's images.

    A caption names the image's cluster (on one line) and its true label; in a grid of
    ``one_cluster`` (a cluster's prototypes and members, whose name the title says) it is the true
    label alone, or the file's name where there are no labels. The tooltip holds all of them.
    """
    model = grid.grid_model

    def described(i: int) -> str:
        label = session.true_label(i)
        if not session.clustered:  # the map alone: no cluster to name yet
            return label if label is not None else session.file_name(i)
        text = session.cluster_name(int(session.assignment[i]))
        return f"{text}\n({label})" if label is not None else text

    def caption(i: int) -> str:
        label = session.true_label(i)
        if one_cluster:
            return label if label is not None else PurePath(session.file_name(i)).name
        if label is None or not session.clustered:
            return described(i)
        # The cluster's name on one line, so that a long one ("mixed: a / b") leaves the label room.
        width = grid.gridSize().width() - 2 * CAPTION_MARGIN
        name = session.cluster_name(int(session.assignment[i]))
        return (
            f"{grid.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, width)}\n({label})"
        )

    def tooltip(i: int) -> str:
        text = f"{session.file_name(i)}\n{described(i).replace(chr(10), ' ')}"
        return f"{text}\nconfidence {session.confidence_text(i)}" if session.clustered else text

    model.caption = caption
    model.tooltip = tooltip
    model.tint = lambda i: palette.color(int(session.assignment[i]), session.n_clusters)
    session.assignmentChanged.connect(model.refresh)


class NeighboursPanel(QWidget):
    """The current image and its k nearest neighbours; clicking a neighbour makes it current."""

    def __init__(self, session: Session, loader: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.loader = session, loader
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self.image = QLabel()
        self.image.setFixedSize(loader.size + 4, loader.size + 4)
        self.details = QLabel("Click an image in the map or a grid.")
        self.details.setWordWrap(True)
        head.addWidget(self.image)
        head.addWidget(self.details, 1)
        layout.addLayout(head)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.grid = ThumbnailGrid(loader)
        configure_grid(self.grid, session)
        layout.addWidget(self.grid, 1)
        self.grid.activated_image.connect(session.set_current)
        session.currentChanged.connect(self.refresh)
        session.runChanged.connect(self.refresh)
        session.assignmentChanged.connect(self._refresh_details)
        loader.loaded.connect(self._on_thumbnail)
        self.refresh()

    def refresh(self, *_) -> None:
        s = self.session
        i = s.current
        if s.run is None or i < 0:
            self.image.clear()
            self.details.setText("Click an image in the map or a grid." if s.run else "")
            self.title.setText("")
            self.grid.set_items([])
            return
        neighbours = s.neighbours(i)
        if s.run.neighbours is None:
            self.title.setText("This run has no neighbours.")
        elif not s.clustered:
            self.title.setText(f"{len(neighbours)} nearest neighbours:")
        else:
            same = sum(int(s.assignment[j] == s.assignment[i]) for j in neighbours)
            self.title.setText(f"{len(neighbours)} nearest neighbours, {same} in the same cluster:")
        self.grid.set_items(neighbours)
        self._refresh_details()

    def _refresh_details(self) -> None:
        s, i = self.session, self.session.current
        if s.run is None or i < 0:
            return
        self.image.setPixmap(self.loader.pixmap(i))
        lines = [f"<b>{s.file_name(i)}</b>", f"cluster: {s.cluster_name(int(s.assignment[i]))}"]
        if s.clustered:
            lines.append(f"confidence: {s.confidence_text(i)}")
        if s.true_label(i) is not None:
            lines.append(f"true label: {s.true_label(i)}")
        self.details.setText("<br>".join(lines))

    def _on_thumbnail(self, i: int) -> None:
        if i == self.session.current:
            self.image.setPixmap(self.loader.pixmap(i))


class SelectionPanel(QWidget):
    """The images selected in the map (box, lasso) or in a cluster's member grid.

    Signals:
        moveRequested(): the user wants to move the selected images to another cluster.
        newClusterRequested(): the user wants the selected images in a new cluster of their own.
        exportRequested(): the user wants the selected images' labels as a CSV.
    """

    moveRequested = Signal()
    newClusterRequested = Signal()
    exportRequested = Signal()

    def __init__(self, session: Session, loader: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        self.count = QLabel("No images selected.")
        self.count.setWordWrap(True)
        layout.addWidget(self.count)
        top = QHBoxLayout()
        self.move_button = QPushButton("Move to…")
        self.move_button.setToolTip("Put the selected images into another cluster (a correction).")
        self.move_button.clicked.connect(self.moveRequested)
        self.new_button = QPushButton("New cluster")
        self.new_button.setToolTip(
            "Put the selected images into a new cluster, numbered after the others (a correction)."
        )
        self.new_button.clicked.connect(self.newClusterRequested)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write the selected images' paths and clusters to a CSV.")
        self.export_button.clicked.connect(self.exportRequested)
        for button in (self.move_button, self.new_button, self.export_button):
            top.addWidget(button)
        top.addStretch(1)
        layout.addLayout(top)
        self.grid = ThumbnailGrid(loader)
        configure_grid(self.grid, session)
        layout.addWidget(self.grid, 1)
        self.grid.activated_image.connect(session.set_current)
        session.selectionChanged.connect(self.refresh)
        session.runChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        sel = self.session.selection
        self.count.setText(f"{len(sel):,} images selected" if len(sel) else "No images selected.")
        self.move_button.setEnabled(bool(len(sel)) and self.session.editable)
        self.new_button.setEnabled(bool(len(sel)) and self.session.editable)
        self.export_button.setEnabled(bool(len(sel)) and self.session.editable)
        self.grid.set_items(sel)
