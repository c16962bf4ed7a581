"""The side panel: the image folder, the run folder, the run's parameters, Run and Cancel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from semclust.gui._core import (
    AUTO,
    BACKBONES,
    FINETUNED,
    FROZEN,
    METHODS,
    REPRESENTATIONS,
    SCRATCH,
    RunChoices,
    RunConfig,
    build_config,
    choices_of,
    representation_of,
    with_default_representation,
)

REPRESENTATION_TITLES = {
    SCRATCH: "From scratch (SimCLR on these images)",
    FROZEN: "Pretrained backbone, frozen",
    FINETUNED: "Pretrained backbone, fine-tuned",
}
METHOD_TITLES = {
    "auto": "Best of SCAN and the alternatives (label-free choice)",
    "scan": "SCAN (neighbours agree)",
    "umap_gmm": "UMAP + Gaussian mixture (unequal cluster sizes)",
    "kmeans": "K-means on the features (seconds)",
    "ward": "Ward agglomerative (seconds, up to 20,000 images)",
    "dec": "Deep Embedded Clustering",
}


def _spin(lo: int, hi: int, value: int, tip: str, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _with_button(edit: QLineEdit, on_click) -> QHBoxLayout:
    """A row of a line edit and a small "…" button (choose a file or folder)."""
    row = QHBoxLayout()
    button = QPushButton("…")
    button.setFixedWidth(28)
    button.clicked.connect(on_click)
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class ParametersPanel(QWidget):
    """Folder information and run parameters, with the core's defaults and tooltips.

    Signals:
        runRequested(): the user pressed Run.
        cancelRequested(): the user pressed Cancel.
        skippedRequested(): the user wants the list of skipped files.
        runDirChangeRequested(): the user wants another run folder.
    """

    runRequested = Signal()
    cancelRequested = Signal()
    skippedRequested = Signal()
    runDirChangeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        d = RunConfig()
        self._base = d
        self._config_shown = False  # an earlier run's settings are shown (not the defaults)
        self._default = None  # the default representation last shown
        self.image_side: int | None = None  # the images' typical side, once the folder is surveyed
        layout = QVBoxLayout(self)

        data = QGroupBox("Images")
        form = QFormLayout(data)
        self.folder_label = QLabel("No folder open. Use File ▸ Open folder or drop one here.")
        self.folder_label.setWordWrap(True)
        self.found_label = QLabel("–")
        self.labels_label = QLabel("–")
        self.labels_label.setWordWrap(True)
        skipped_row = QHBoxLayout()
        self.skipped_label = QLabel("–")
        self.skipped_button = QPushButton("Show…")
        self.skipped_button.setToolTip("The files the run could not read, and why.")
        self.skipped_button.setEnabled(False)
        self.skipped_button.clicked.connect(self.skippedRequested)
        skipped_row.addWidget(self.skipped_label, 1)
        skipped_row.addWidget(self.skipped_button)
        form.addRow("Folder:", self.folder_label)
        form.addRow("Found:", self.found_label)
        form.addRow("Skipped:", skipped_row)
        form.addRow("Labels:", self.labels_label)
        self.run_dir_edit = QLineEdit()
        self.run_dir_edit.setToolTip(
            "Where the run keeps its artefacts. Never inside the image folder. Running again into "
            "the same folder skips the stages already done."
        )
        form.addRow("Run folder:", _with_button(self.run_dir_edit, self.runDirChangeRequested))
        layout.addWidget(data)

        box = QGroupBox("Parameters")
        form = QFormLayout(box)
        self.clusters = _spin(1, 1000, d.clusters, "Number of clusters to find (SCAN's K); auto: "
                              "chosen without labels between 2 and 30 (its curve is in the "
                              "Clusters tab).")  # fmt: skip
        self.clusters.setSpecialValueText("auto")
        self.representation = QComboBox()
        for rep in REPRESENTATIONS:
            self.representation.addItem(REPRESENTATION_TITLES[rep], rep)
        self.representation.setToolTip(
            "From scratch: learn features with SimCLR on these images (slow, no download).\n"
            "Frozen: use a pretrained ImageNet backbone as is (fast).\n"
            "Fine-tuned: start from the pretrained backbone and continue with SimCLR."
        )
        self.method = QComboBox()
        for method in METHODS:
            self.method.addItem(METHOD_TITLES.get(method, method), method)
        self.method.setToolTip(
            "How clusters are made from the representation. SCAN trains clustering heads so that an "
            "image and its neighbours agree;\nthe others are the classic alternatives on the same "
            "features (K-means is also shown as a preview while SCAN trains)."
        )
        self.representation_note = QLabel("")
        self.representation_note.setWordWrap(True)
        self.representation_note.setStyleSheet("color: palette(mid);")
        self.backbone = QComboBox()
        self.backbone.addItems(list(BACKBONES))
        self.backbone.setEditable(True)  # a keras-hub preset id, an hf:// id or a preset folder too
        self.backbone.setCurrentText(d.encoder.backbone)
        self.backbone.setToolTip(
            "resnet_small: compact ResNet for small images (CPU default).\n"
            "resnet50v2: as in the keras.io SCAN example.\nmobilenet: ImageNet MobileNet v1."
        )
        self.weights = QLineEdit("imagenet")
        self.weights.setToolTip(
            "'imagenet' downloads Keras' ImageNet weights; or the path of a local .weights.h5 file."
        )
        self.image_size = _spin(0, 1024, 0, "Side of the square image every file is resized to; "
                                "auto: 32 from scratch, the backbone's own size when pretrained.", 32)  # fmt: skip
        self.image_size.setSpecialValueText("auto")
        self.pretext_epochs = _spin(0, 10_000, d.pretext.epochs,
                                    "SimCLR epochs (representation learning).")  # fmt: skip
        self.scan_epochs = _spin(1, 10_000, d.scan.epochs, "SCAN clustering epochs.")
        self.selflabel_epochs = _spin(0, 10_000, d.selflabel.epochs, "Self-labelling epochs.")
        self.k = _spin(
            1, 500, d.neighbours.k, "Nearest neighbours per image mined for SCAN (paper: 20)."
        )
        self.entropy = QDoubleSpinBox()
        self.entropy.setRange(0.0, 100.0)
        self.entropy.setSingleStep(0.5)
        self.entropy.setValue(d.scan.entropy_weight)
        self.entropy.setToolTip(
            "SCAN's entropy weight (lambda, paper: 5). Higher spreads images over more clusters; "
            "raise it if the clustering collapses into a few clusters."
        )
        self.heads = _spin(1, 50, d.scan.heads, "Clustering heads trained at once; the one with the "
                           "lowest SCAN loss is kept (no labels used).")  # fmt: skip
        self.head_hidden = _spin(0, 4096, d.scan.hidden, "Width of a hidden layer shared by the "
                                 "heads; 0: linear heads as in SCAN.", 64)  # fmt: skip
        self.head_hidden.setSpecialValueText("none (linear)")
        self.labels_csv = QLineEdit()
        self.labels_csv.setPlaceholderText("from class subfolders")
        self.labels_csv.setToolTip(
            "Optional CSV of path,label (paths relative to the image folder) giving true labels, "
            "for accuracy figures. Empty: class subfolder names, if any."
        )
        self.update_encoder = QCheckBox("Fine-tune the backbone during SCAN")
        self.update_encoder.setChecked(d.scan.update_encoder)
        self.update_encoder.setToolTip("Slower; trains the backbone with the clustering heads.")
        self.selflabel = QCheckBox("Self-labelling")
        self.selflabel.setChecked(d.selflabel.enabled)
        self.selflabel.setToolTip(
            "Retrain on the confident predictions (SCAN section 2.3); usually a few points of accuracy."
        )
        self.seed = _spin(
            0, 2**31 - 1, d.seed, "Random seed: same seed, data and machine, same clusters."
        )
        form.addRow("Clusters:", self.clusters)
        form.addRow("Method:", self.method)
        form.addRow("Representation:", self.representation)
        form.addRow(self.representation_note)
        form.addRow("Backbone:", self.backbone)
        form.addRow("Weights:", _with_button(self.weights, self._browse_weights))
        form.addRow("Image size:", self.image_size)
        form.addRow("Pretext epochs:", self.pretext_epochs)
        form.addRow("SCAN epochs:", self.scan_epochs)
        form.addRow("Self-label epochs:", self.selflabel_epochs)
        form.addRow("k neighbours:", self.k)
        form.addRow("Entropy weight:", self.entropy)
        form.addRow("Heads:", self.heads)
        form.addRow("Head hidden width:", self.head_hidden)
        form.addRow("True labels CSV:", _with_button(self.labels_csv, self._browse_labels))
        form.addRow(self.update_encoder)
        form.addRow(self.selflabel)
        form.addRow("Seed:", self.seed)
        layout.addWidget(box)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Start, or continue from the stages already done.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop within a batch; finished stages are kept.")
        self.run_button.clicked.connect(self.runRequested)
        self.cancel_button.clicked.connect(self.cancelRequested)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.representation.currentIndexChanged.connect(self._sync_enabled)
        self.backbone.textActivated.connect(self._follow_backbone)
        self.method.currentIndexChanged.connect(self._sync_enabled)
        self.selflabel.toggled.connect(self._sync_enabled)
        self.set_running(False)
        self.set_can_run(False)
        self._sync_enabled()

    # -- folder information ------------------------------------------------------------------------
    def set_folder(self, folder: Path | None) -> None:
        self.folder_label.setText(str(folder) if folder else "No folder open.")
        self.folder_label.setToolTip(str(folder) if folder else "")

    def set_survey(self, n_found: int | None, class_names: list[str] | None) -> None:
        self.found_label.setText("–" if n_found is None else f"{n_found:,} image files")
        if class_names is None:
            self.labels_label.setText("–")
        elif class_names:
            shown = ", ".join(class_names[:8]) + (" …" if len(class_names) > 8 else "")
            self.labels_label.setText(f"{len(class_names)} classes from subfolders ({shown})")
        else:
            self.labels_label.setText("none (no class subfolders)")

    def set_skipped(self, skipped: list[tuple[str, str]] | None) -> None:
        if skipped is None:
            self.skipped_label.setText("known after ingest")
        else:
            self.skipped_label.setText(f"{len(skipped):,} files")
        self.skipped_button.setEnabled(bool(skipped))

    def run_dir(self) -> Path | None:
        text = self.run_dir_edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_run_dir(self, path: Path | None) -> None:
        self.run_dir_edit.setText(str(path) if path else "")

    # -- parameters --------------------------------------------------------------------------------
    def choices(self) -> RunChoices:
        """What the form shows, in the words the command line uses too."""
        rep = self.representation.currentData()
        return RunChoices(
            clusters=AUTO if self.clusters.value() == 1 else self.clusters.value(),
            representation=rep,
            backbone=self.backbone.currentText(),
            weights=None if rep == SCRATCH else (self.weights.text().strip() or "imagenet"),
            image_size=self.image_size.value() or None,
            pretext_epochs=self.pretext_epochs.value(),
            method=self.method.currentData(),
            scan_epochs=self.scan_epochs.value(),
            heads=self.heads.value(),
            head_hidden=self.head_hidden.value(),
            entropy_weight=float(self.entropy.value()),
            k=self.k.value(),
            update_encoder=self.update_encoder.isChecked(),
            selflabel=self.selflabel.isChecked(),
            selflabel_epochs=self.selflabel_epochs.value(),
            seed=self.seed.value(),
            labels_csv=self.labels_csv.text().strip() or None,
        )

    def config(self) -> RunConfig:
        """The RunConfig the form describes (the core's factory), on top of the last loaded config."""
        return build_config(self.choices(), self._base, self.image_side)

    def set_default_representation(self, default) -> None:
        """Shows the representation a new run starts from (a pretrained backbone available here, else
        from scratch) and why; a form showing an earlier run's settings, or a representation the user
        chose after the previous default was shown, keeps them."""
        previous, self._default = self._default, default
        self._show_note()
        if self._config_shown or (previous is not None and not self._shows(previous)):
            return
        c = with_default_representation(RunChoices(), default)
        self.backbone.setCurrentText(c.backbone)
        if c.weights is not None:
            self.weights.setText(str(c.weights))
        self.representation.setCurrentIndex(self.representation.findData(c.representation))

    def _shows(self, default) -> bool:
        """Whether the form still shows this default representation."""
        c = with_default_representation(RunChoices(), default)
        return (self.backbone.currentText(), self.representation.currentData()) == (
            c.backbone,
            c.representation,
        )

    def _show_note(self) -> None:
        reason = self._default.reason if self._default is not None else ""
        if self._config_shown and reason:
            reason = (
                f"Showing the settings of the run in this folder. A new run's default: {reason}"
            )
        self.representation_note.setText(reason)
        self.representation_note.setToolTip(reason)

    def set_config(self, cfg: RunConfig) -> None:
        self._config_shown = True
        self._show_note()
        self._base = cfg
        c = choices_of(cfg)
        self.clusters.setValue(1 if c.clusters == AUTO else c.clusters)
        self.seed.setValue(c.seed)
        self.method.setCurrentIndex(max(0, self.method.findData(c.method)))
        self.image_size.setValue(c.image_size or 0)
        self.backbone.setCurrentText(c.backbone)
        if c.weights is not None:
            self.weights.setText(str(c.weights))
        self.representation.setCurrentIndex(self.representation.findData(c.representation))
        if c.pretext_epochs:
            self.pretext_epochs.setValue(c.pretext_epochs)
        self.scan_epochs.setValue(c.scan_epochs)
        self.heads.setValue(c.heads)
        self.head_hidden.setValue(c.head_hidden)
        self.labels_csv.setText(c.labels_csv or "")
        self.k.setValue(c.k)
        self.entropy.setValue(c.entropy_weight)
        self.update_encoder.setChecked(c.update_encoder)
        self.selflabel.setChecked(c.selflabel)
        self.selflabel_epochs.setValue(c.selflabel_epochs)

    def set_running(self, running: bool) -> None:
        self._running = running
        self.cancel_button.setEnabled(running)
        self.run_button.setEnabled(not running and getattr(self, "_can_run", False))

    def set_can_run(self, can: bool) -> None:
        self._can_run = can
        self.run_button.setEnabled(can and not self._running)

    def _follow_backbone(self, name: str) -> None:
        """A backbone the user picks brings its own pretrained weights, as ``--backbone`` does (choose
        "From scratch" after it for a random initialisation); one without any is trained from scratch.
        """
        rep = representation_of(RunChoices(backbone=name))
        if rep == SCRATCH or self.representation.currentData() == SCRATCH:
            self.representation.setCurrentIndex(self.representation.findData(rep))
        if rep != SCRATCH:
            self.weights.setText("imagenet")  # not another backbone's weights file

    def _sync_enabled(self) -> None:
        rep = self.representation.currentData()
        if rep != SCRATCH and self.backbone.currentText() == "resnet_small":
            self.backbone.setCurrentText("mobilenet")  # resnet_small has no pretrained weights
        self.weights.setEnabled(rep != SCRATCH)
        self.pretext_epochs.setEnabled(rep != FROZEN)
        self.selflabel_epochs.setEnabled(self.selflabel.isChecked())
        scan = self.method.currentData() in ("scan", "auto")  # auto trains SCAN's heads too
        for widget in (self.scan_epochs, self.heads, self.head_hidden, self.entropy,
                       self.update_encoder, self.selflabel):  # fmt: skip
            widget.setEnabled(scan)
        if not scan:
            self.selflabel.setChecked(False)

    def _browse_labels(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "True labels", "", "CSV (*.csv)")
        if path:
            self.labels_csv.setText(path)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Backbone weights", "", "Keras weights (*.h5)")
        if path:
            self.weights.setText(path)
