"""Accuracy, when true labels are known: ACC, NMI, ARI; purity per cluster; the confusion matrix.

The numbers follow the user's corrections; the model's own scores (from ``metrics.json``) are shown
beside them.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QStackedLayout, QVBoxLayout, QWidget

from semclust.gui.panels.plots import elide, titled
from semclust.gui.session import Session

METRICS = (("acc", "ACC", "Accuracy after matching clusters to classes (Hungarian)."),
           ("nmi", "NMI", "Normalised mutual information."),
           ("ari", "ARI", "Adjusted Rand index."))  # fmt: skip


NO_LABELS = "No true labels: put the images in class subfolders to measure accuracy."


class AccuracyPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.stack = QStackedLayout(self)
        self.empty = QLabel(NO_LABELS)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.stack.addWidget(self.empty)

        page = QWidget()
        layout = QVBoxLayout(page)
        grid = QGridLayout()
        self.values: dict[str, QLabel] = {}
        self.model_values: dict[str, QLabel] = {}
        grid.addWidget(QLabel("<i>your corrections</i>"), 1, 0)
        grid.addWidget(QLabel("<i>model</i>"), 2, 0)
        for col, (key, title, tip) in enumerate(METRICS, start=1):
            head = QLabel(f"<b>{title}</b>")
            head.setToolTip(tip)
            value = QLabel("–")
            value.setStyleSheet("QLabel { font-size: 22px; }")
            value.setToolTip(tip)
            model = QLabel("–")
            grid.addWidget(head, 0, col)
            grid.addWidget(value, 1, col)
            grid.addWidget(model, 2, col)
            self.values[key], self.model_values[key] = value, model
        grid.setColumnStretch(len(METRICS) + 1, 1)
        layout.addLayout(grid)

        plots = QHBoxLayout()
        self.purity_plot = pg.PlotWidget()
        self.purity_plot.setBackground("w")
        self.purity_plot.setYRange(0, 1)
        self.purity_plot.setLabel("bottom", "cluster")
        self.purity_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#2ca02c")
        self.purity_plot.addItem(self.purity_bars)
        box, _ = titled(self.purity_plot, "Purity per cluster (share of its majority label)")
        plots.addWidget(box, 2)
        self.confusion_plot = pg.PlotWidget()
        self.confusion_plot.setBackground("w")
        self.confusion_plot.invertY(True)
        self.confusion_plot.setAspectLocked(False)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat.setColorMap(pg.colormap.get("viridis"))
        self.confusion_plot.addItem(self.heat)
        self._texts: list[pg.TextItem] = []
        self._classes: list[str] = []
        self.confusion_plot.getViewBox().sigResized.connect(self._label_columns)
        box, _ = titled(self.confusion_plot, "Confusion (rows: clusters, columns: true labels)")
        plots.addWidget(box, 3)
        layout.addLayout(plots, 1)
        self.stack.addWidget(page)

        session.runChanged.connect(self.refresh)
        session.assignmentChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        s = self.session
        ev = s.evaluation() if s.clustered else None
        if ev is None:
            self.empty.setText(NO_LABELS if s.clustered or s.run is None else "No clusters yet.")
            self.stack.setCurrentIndex(0)
            return
        self.stack.setCurrentIndex(1)
        model = s.run.metrics or {}
        for key, _, _ in METRICS:
            self.values[key].setText(f"{ev[key]:.3f}")
            self.model_values[key].setText(
                f"{model[key]:.3f}" if model.get(key) is not None else "–"
            )

        stats = s.summary()
        purity = np.array([st.purity if st.purity is not None else 0.0 for st in stats])
        self.purity_bars.setOpts(x=np.arange(len(purity)), height=purity, width=0.8)
        self.purity_plot.getAxis("bottom").setTicks(
            [[(c, str(c)) for c in range(len(purity))]] if len(purity) <= 30 else None
        )

        conf = np.asarray(ev["confusion"], dtype=float)
        classes = list(ev["class_names"])
        k = s.n_clusters
        if conf.shape[0] < k:  # empty trailing clusters
            conf = np.vstack([conf, np.zeros((k - conf.shape[0], conf.shape[1]))])
        self.heat.setImage(conf, levels=(0, max(1.0, conf.max())))
        self.heat.setRect(0, 0, conf.shape[1], conf.shape[0])
        for t in self._texts:
            self.confusion_plot.removeItem(t)
        self._texts = []
        if conf.size <= 400:
            hi = conf.max()
            for r in range(conf.shape[0]):
                for c in range(conf.shape[1]):
                    if conf[r, c]:
                        color = "k" if conf[r, c] > 0.6 * hi else "w"
                        t = pg.TextItem(f"{int(conf[r, c])}", color=color, anchor=(0.5, 0.5))
                        t.setPos(c + 0.5, r + 0.5)
                        self.confusion_plot.addItem(t)
                        self._texts.append(t)
        left = self.confusion_plot.getAxis("left")
        left.setTicks([[(r + 0.5, elide(s.cluster_name(r))) for r in range(conf.shape[0])]]
                      if conf.shape[0] <= 30 else None)  # fmt: skip
        self._classes = classes
        self._label_columns()
        self.confusion_plot.autoRange()

    def _label_columns(self) -> None:
        """The true labels under the confusion matrix, each cut to what its column's width holds
        (on a laptop, 7 columns of about 35 px: "cere…", "frui…"), so that none hides another; the
        full names are in the plot's tooltip."""
        classes = self._classes
        bottom = self.confusion_plot.getAxis("bottom")
        if not classes or len(classes) > 30:
            bottom.setTicks(None)
            return
        width = self.confusion_plot.getViewBox().width() or self.confusion_plot.width()
        char = max(1, self.fontMetrics().averageCharWidth())
        chars = max(2, min(12, int(width / len(classes) / char) - 1))
        bottom.setTicks([[(c + 0.5, elide(name, chars)) for c, name in enumerate(classes)]])
        self.confusion_plot.setToolTip(
            "Columns: " + ", ".join(f"{i + 1}. {name}" for i, name in enumerate(classes))
        )
