"""The progress view: one bar per stage with elapsed and remaining time, a live loss plot, and during
SCAN a live bar chart of cluster sizes that warns when the clustering collapses."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from semclust.gui._core import STAGES, Progress, format_seconds
from semclust.gui.panels.plots import titled

STAGE_TITLES = {
    "ingest": "Read images",
    "pretext": "Features (backbone, or SimCLR)",  # a frozen backbone learns nothing here
    "neighbours": "Mine neighbours",
    "choose_k": "Choose the number of clusters",
    "projection": "Map (UMAP)",
    "preview": "Preview (K-means)",
    "clustering": "Clustering",
    "selflabel": "Self-label",
    "report": "Report",
}
LOSS_PENS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def collapse_warning(sizes) -> str | None:
    """A warning when SCAN's clusters collapse: one cluster holds most images, or several are empty."""
    sizes = np.asarray(sizes, dtype=float)
    k, n = len(sizes), sizes.sum()
    if k < 2 or n <= 0:
        return None
    limit = max(0.5, min(0.9, 3.0 / k))
    empty = int(np.sum(sizes == 0))
    if sizes.max() / n > limit:
        return (f"Collapsing: cluster {int(sizes.argmax())} holds {sizes.max() / n:.0%} of the images. "
                "Consider a higher entropy weight.")  # fmt: skip
    if empty >= 2:
        return f"Collapsing: {empty} of {k} clusters are empty. Consider a higher entropy weight."
    return None


def stages_off(config) -> dict[str, str]:
    """The stages a run with this RunConfig leaves out, and the word its row shows instead."""
    if config is None:
        return {}
    off = {}
    if not config.selflabel.enabled:
        off["selflabel"] = "off"
    if config.auto_clusters is None:
        off["choose_k"] = f"off ({config.clusters} clusters asked)"
    return off


class _StageRow:
    def __init__(self, grid: QGridLayout, row: int, stage: str) -> None:
        self.title = QLabel(STAGE_TITLES.get(stage, stage))
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.time = QLabel("")
        self.time.setMinimumWidth(170)
        self.time.setWordWrap(True)
        grid.addWidget(self.title, row, 0)
        grid.addWidget(self.bar, row, 1)
        grid.addWidget(self.time, row, 2)
        self.reset()

    def reset(self, off: str = "") -> None:
        """Waiting for its turn; ``off``: why this run leaves the stage out (it stays so)."""
        self.started: float | None = None
        self.fraction = 0.0
        self.state = "off" if off else "waiting"
        self.bar.setValue(0)
        self.bar.setEnabled(not off)
        self.time.setText(off or "waiting")
        self.time.setToolTip("")

    def update_time(self, now: float) -> None:
        if self.state != "running" or self.started is None:
            return
        elapsed = now - self.started
        text = format_seconds(elapsed)
        if self.fraction > 0.02:
            text += f", about {format_seconds(elapsed * (1 - self.fraction) / self.fraction)} left"
        self.time.setText(text)


class ProgressPanel(QWidget):
    """Shows a run's progress; fed by :meth:`on_progress` from the run controller's signal."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        layout.addWidget(self.banner)

        stages = QGroupBox("Stages")
        grid = QGridLayout(stages)
        grid.setColumnStretch(1, 1)
        self.rows = {s: _StageRow(grid, i, s) for i, s in enumerate(STAGES)}
        layout.addWidget(stages)
        self.message = QLabel("")
        self.message.setWordWrap(True)  # in the outer layout, which gives it the lines it wraps to
        layout.addWidget(self.message)

        plots = QHBoxLayout()
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setBackground("w")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_plot.setLabel("bottom", "batch")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.3)
        loss_box, self.loss_title = titled(self.loss_plot, "Loss")
        plots.addWidget(loss_box, 1)
        sizes_box = QVBoxLayout()
        self.sizes_plot = pg.PlotWidget()
        self.sizes_plot.setBackground("w")
        self.sizes_plot.setLabel("bottom", "cluster")
        self.sizes_plot.setLabel("left", "images")
        self.size_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#1f77b4")
        self.sizes_plot.addItem(self.size_bars)
        self.collapse_label = QLabel("")
        self.collapse_label.setWordWrap(True)
        self.collapse_label.setStyleSheet(
            "QLabel { background: #fff3cd; color: #7a4d00; padding: 6px; border: 1px solid #e0b84f; }"
        )
        self.collapse_label.hide()
        sizes_box.addWidget(titled(self.sizes_plot, "Cluster sizes (SCAN)")[0], 1)
        sizes_box.addWidget(self.collapse_label)
        plots.addLayout(sizes_box, 1)
        # Only a run that trains (SimCLR, SCAN, DEC, TEMI) has losses and sizes to plot: the plots
        # show from its first such event, and a frozen backbone's run shows none, empty.
        self.plots = QWidget()
        self.plots.setLayout(plots)
        plots.setContentsMargins(0, 0, 0, 0)
        self.plots.hide()
        layout.addWidget(self.plots, 1)
        layout.addStretch(0)  # takes the room of hidden plots

        self._curves: dict[str, pg.PlotDataItem] = {}
        self._loss_x: list[int] = []
        self._loss_y: dict[str, list[float]] = {}
        self._current_stage: str | None = None
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)

    # -- feeding ----------------------------------------------------------------------------------
    def start_run(self, config=None) -> None:
        """A new run; ``config`` (its RunConfig) says which stages it leaves out."""
        off = stages_off(config)
        for stage, row in self.rows.items():
            row.reset(off.get(stage, ""))
        self.banner.hide()
        self.collapse_label.hide()
        self.size_bars.setOpts(x=[], height=[])
        self.plots.hide()
        self.message.setText("Starting…")
        self._reset_losses(None)
        self._clock.start()

    def show_finished(self, config, seconds: dict[str, float], text: str) -> None:
        """A finished run opened from its folder: each stage done (in the time its record holds) or
        off, and ``text`` (what it found)."""
        self._clock.stop()
        off = stages_off(config)
        for stage, row in self.rows.items():
            row.reset(off.get(stage, ""))
            if stage in off:
                continue
            row.state, row.fraction = "done", 1.0
            row.bar.setValue(1000)
            took = seconds.get(stage)
            row.time.setText("done" if took is None else f"done in {format_seconds(took)}")
        self.banner.hide()
        self.collapse_label.hide()
        self.size_bars.setOpts(x=[], height=[])
        self.plots.hide()  # a finished run's losses are not kept
        self._reset_losses(None)
        self.message.setText(text)

    def end_run(self, text: str, error: bool = False) -> None:
        self._clock.stop()
        for row in self.rows.values():
            if row.state == "running":
                row.state = "stopped"
                row.time.setText("stopped" if not error else "failed")
        self.message.setText(text if not error else "")
        if error:
            self.show_error(text)

    def show_error(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setStyleSheet(
            "QLabel { background: #f8d7da; color: #721c24; padding: 8px; border: 1px solid #e0a0a6; }"
        )
        self.banner.show()

    def on_progress(self, event: Progress) -> None:
        row = self.rows.get(event.stage)
        now = time.monotonic()
        if row is None:
            return
        if row.state == "off":  # the run leaves it out: no "done in 0 s"
            pass
        elif event.kind == "started":
            row.state, row.started, row.fraction = "running", now, 0.0
            row.bar.setValue(0)
            row.time.setText("0 s")
        elif event.kind == "progress":
            if row.state != "running":  # no 'started' seen (throttled or resumed)
                row.state, row.started = "running", now
            if event.total:  # a note (no count) leaves the bar where it is
                row.fraction = event.fraction
                row.bar.setValue(int(1000 * event.fraction))
            row.update_time(now)
            if event.losses:
                self.plots.show()
                self._add_losses(event)
        elif event.kind == "finished":
            took = now - row.started if row.started else 0.0
            row.state, row.fraction = "done", 1.0
            row.bar.setValue(1000)
            row.time.setText(f"done in {format_seconds(took)}")
        elif event.kind == "skipped":
            row.state = "skipped"
            row.bar.setValue(1000)
            row.time.setText("already done (skipped)")
        if event.message:
            self.message.setText(f"{STAGE_TITLES.get(event.stage, event.stage)}: {event.message}")
        if event.partial and "cluster_sizes" in event.partial:
            self.show_cluster_sizes(event.partial["cluster_sizes"])

    def show_cluster_sizes(self, sizes) -> None:
        self.plots.show()
        sizes = np.asarray(sizes, dtype=float)
        self.size_bars.setOpts(x=np.arange(len(sizes)), height=sizes, width=0.8)
        warning = collapse_warning(sizes)
        self.collapse_label.setText("⚠ " + warning if warning else "")
        self.collapse_label.setVisible(bool(warning))

    # -- internals --------------------------------------------------------------------------------
    def _reset_losses(self, stage: str | None) -> None:
        """An empty loss plot whose axes will fit the next losses (not the last run's range)."""
        self.loss_plot.clear()
        legend = self.loss_plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self.loss_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.loss_plot.enableAutoRange()  # after setRange, which turns it off
        self._curves.clear()
        self._loss_x, self._loss_y = [], {}
        self._current_stage = stage
        title = f"Loss – {STAGE_TITLES.get(stage, stage)}" if stage else "Loss"
        self.loss_title.setText(title)

    def _add_losses(self, event: Progress) -> None:
        if event.stage != self._current_stage:
            self._reset_losses(event.stage)
        self._loss_x.append(event.step)
        for name, value in event.losses.items():
            ys = self._loss_y.setdefault(name, [np.nan] * (len(self._loss_x) - 1))
            ys.append(float(value))
        for name, ys in self._loss_y.items():
            if len(ys) < len(self._loss_x):
                ys.append(np.nan)
            curve = self._curves.get(name)
            if curve is None:
                pen = pg.mkPen(LOSS_PENS[len(self._curves) % len(LOSS_PENS)], width=2)
                curve = self.loss_plot.plot([], [], pen=pen, name=name, connect="finite")
                self._curves[name] = curve
            curve.setData(np.asarray(self._loss_x, float), np.asarray(ys, float), connect="finite")

    def _tick(self) -> None:
        now = time.monotonic()
        for row in self.rows.values():
            row.update_time(now)
