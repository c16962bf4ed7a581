"""The window's corrections and exports: move the selection, make a new cluster of it, split a
cluster, retrain the clusters with the corrections (and restore the model's), export labels (all, or
the selection) and per-cluster folders of copies, save the run's report (one HTML page to share),
export the run as a Keras model.

A mix-in of :class:`gui.main_window.MainWindow`: it uses the window's session, clusters panel, status bar
and message box, and keeps the window's own method names (``window.export_csv``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from semclust.gui._core import (
    check_model_path,
    check_report_path,
    export_cluster_folders,
    export_labels,
    restore_model_clusters,
    retrain_with_corrections,
    write_report,
)
from semclust.gui._core import export_model as write_model
from semclust.gui.panels.clusters import choose_cluster
from semclust.gui.tasks import run_in_background


class ReviewCommands:
    """Corrections and exports of the run shown in the window."""

    #: a retrain is computing in the background (one at a time)
    retraining = False

    def _ask_save_path(self, title: str, suggested: Path, file_filter: str) -> Path | None:
        """The path the user chose in a save dialog, or None when they cancelled."""
        chosen, _ = QFileDialog.getSaveFileName(self, title, str(suggested), file_filter)
        return Path(chosen) if chosen else None

    def move_selection(self) -> None:
        if not len(self.session.selection):
            return
        target = choose_cluster(self, self.session, f"Move {len(self.session.selection)} images to")
        if target is not None:
            self.session.move(self.session.selection, target)

    def new_cluster_from_selection(self) -> int | None:
        """The selected images in a new cluster (numbered after the others), shown in the table."""
        count = len(self.session.selection)
        made = self.session.new_cluster(self.session.selection)
        if made is not None:
            self.clusters.choose(made)
            self.statusBar().showMessage(
                f"Made cluster {made} of {count:,} images; rename it in the Clusters tab."
            )
        return made

    def split_cluster(self, parts: int | None = None, cluster: int | None = None) -> list[int]:
        """Splits the cluster chosen in the table (else one asked for) into parts (asked)."""
        if not self.session.editable:
            return []
        if cluster is None and self.clusters.chosen() < 0:
            cluster = choose_cluster(self, self.session, "Split cluster")
            if cluster is None:
                return []
        made = self.clusters.split_cluster(parts, cluster)
        if made:
            self.statusBar().showMessage(
                f"Split cluster {made[0]} into {len(made)}: "
                + ", ".join(str(c) for c in made) + "."
            )  # fmt: skip
        return made

    def retrain_with_corrections(self) -> bool:
        """Retrains the clusters of the images not corrected, in the background from a copy of the
        corrections of now; then the views follow and the status bar says how many changed. Returns
        whether it started."""
        run = self.session.run
        if self.retraining or not self.session.can_retrain or self.controller.is_running:
            return False
        snapshot = run.snapshot()
        self.retraining = True
        self._sync_actions()
        n = len(snapshot.corrections.moves)
        self.statusBar().showMessage(f"Retraining with {n:,} correction{'s' * (n != 1)}…")
        run_in_background(
            retrain_with_corrections, snapshot,
            on_result=lambda result: self._on_retrained(run, result),
            on_error=self._on_retrain_failed,
        )  # fmt: skip
        return True

    def _on_retrained(self, run, result) -> None:
        self.retraining = False
        if self.session.run is run:  # else another run was opened meanwhile: its folder has it
            self.session.set_retrained(result.probabilities, result.info)
            self.statusBar().showMessage(f"{result.message()}.")
        self._sync_actions()

    def _on_retrain_failed(self, exc: Exception) -> None:
        self.retraining = False
        self._sync_actions()
        self.message("Not retrained", str(exc), error=True)

    def restore_model_clusters(self) -> None:
        """Deletes the retrained clusters: the run's model's clusters show again (with corrections)."""
        run = self.session.run
        if self.retraining or not self.session.retrained:
            return
        try:
            restore_model_clusters(run.paths)
        except (OSError, ValueError) as exc:  # ValueError: RunFolderError, the folder in use
            self.message("Not restored", str(exc), error=True)
            return
        self.session.set_retrained(None)
        self.statusBar().showMessage(
            "Showing the model's own clusters again; your corrections stay."
        )

    def export_selection(self, path: Path | None = None) -> Path | None:
        """The labels of the selected images only (say, a lasso in the map), as a CSV."""
        if not len(self.session.selection):
            return None
        return self.export_csv(path, indices=self.session.selection, name="selection.csv")

    def export_csv(
        self, path: Path | None = None, indices=None, name: str = "labels_export.csv"
    ) -> Path | None:
        run = self.session.run
        if run is None or not self.session.editable:
            return None
        if path is None:
            path = self._ask_save_path("Export labels", run.paths.root / name, "CSV (*.csv)")
            if path is None:
                return None
        try:
            export_labels(run, path, indices)
        except (OSError, ValueError) as exc:  # ValueError: a CSV inside the image folder, refused
            self.message("Export failed", str(exc), error=True)
            return None
        self.statusBar().showMessage(f"Wrote {path}")
        return Path(path)

    def export_folders(self, out_dir: Path | None = None) -> None:
        run = self.session.run
        if run is None:
            return
        if out_dir is None:
            name = QFileDialog.getExistingDirectory(self, "Export cluster folders (copies)")
            if not name:
                return
            out_dir = Path(name)
        self.statusBar().showMessage("Copying images…")
        run_in_background(
            export_cluster_folders, run, out_dir,
            on_result=lambda p: self.statusBar().showMessage(f"Copied the images into {p}"),
            on_error=lambda e: self.message("Export failed", str(e), error=True),
        )  # fmt: skip

    def save_report(self, path: Path | None = None) -> Path | None:
        """Writes the run's report (one self-contained HTML page, with the corrections made here) in
        the background; returns the path it is being written to, or None when nothing is written."""
        run = self.session.run
        if run is None or not self.session.editable:
            return None
        if path is None:
            path = self._ask_save_path(
                "Save report", run.paths.root / "report.html", "HTML (*.html *.htm)"
            )
            if path is None:
                return None
        try:
            path = check_report_path(run, path)  # refused at once: in the image folder, a folder
        except ValueError as exc:
            self.message("Report not saved", str(exc), error=True)
            return None
        # The page is written from a copy of the corrections of now: editing goes on meanwhile.
        snapshot = run.snapshot()
        self.statusBar().showMessage("Writing the report…")
        run_in_background(
            write_report, snapshot, path,
            on_result=lambda p: self.statusBar().showMessage(f"Wrote the report {p}"),
            on_error=lambda e: self.message("Report not saved", str(e), error=True),
        )  # fmt: skip
        return path

    def export_model(self, path: Path | None = None) -> Path | None:
        """Writes the run's clusters of now as one ``.keras`` classifier, with the report and a JSON
        of the clusters' names beside it, in the background; returns the model's path, or None."""
        run = self.session.run
        if run is None or not self.session.editable:
            return None
        if path is None:
            suggested = run.paths.root.parent / f"{run.paths.root.name}.keras"
            path = self._ask_save_path("Export model", suggested, "Keras model (*.keras)")
            if path is None:
                return None
        if not path.suffix:
            path = path.with_suffix(".keras")
        try:
            path = check_model_path(run, path)  # refused at once: in the image folder, not .keras
        except ValueError as exc:
            self.message("Model not exported", str(exc), error=True)
            return None
        snapshot = run.snapshot()
        self.statusBar().showMessage("Exporting the model (the encoder, then a head fitted)…")
        run_in_background(
            write_model, snapshot, path,
            on_result=lambda done: self.statusBar().showMessage(
                f"Exported the model {done.model}: it agrees with the clusters on "
                f"{done.agreement:.1%} of the images; names in {done.info.name}"),
            on_error=lambda e: self.message("Model not exported", str(e), error=True),
        )  # fmt: skip
        return path
