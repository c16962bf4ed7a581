"""The side panel: the image folder, the run folder, the run's parameters, Run and Cancel.

The parameters' form is built from their declarations (:class:`~semclust.core.choices.RunChoices`,
``core/param.py``), one control each (:mod:`.controls`); the command line builds its options from the
same declarations.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from semclust.gui._core import (
    SCRATCH,
    Plan,
    RunChoices,
    RunConfig,
    build_config,
    choices_of,
    declared,
    pretrained_backbone,
    representation_of,
)
from semclust.gui.panels.controls import Control

#: What a new run's default representation sets in the form.
REPRESENTATION_PARAMETERS = ("backbone", "weights", "representation")


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

    Each declared parameter's control is also an attribute named as the parameter (``panel.k``,
    ``panel.backbone``), and in ``panel.controls``.

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
        self._base = RunConfig()
        self._config_shown = False  # an earlier run's settings are shown (not the defaults)
        self._plan: Plan | None = None  # a new run's plan for this folder, last shown
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
        self.representation_note = QLabel("")
        self.representation_note.setWordWrap(True)
        self.representation_note.setStyleSheet("color: palette(mid);")
        self.controls: dict[str, Control] = {}
        for d in declared(RunChoices):
            control = self.controls[d.name] = Control(d)
            setattr(self, d.name, control.widget)
            if d.kind == "bool":
                form.addRow(control.row)
            else:
                form.addRow(f"{d.param.label}:", control.row)
            if d.name == "representation":
                form.addRow(self.representation_note)
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

        self.controls["representation"].changed.connect(self._keep_a_pretrained_backbone)
        self.controls["backbone"].widget.textActivated.connect(self._follow_backbone)
        for control in self.controls.values():
            control.changed.connect(self._sync_enabled)
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
            self.skipped_label.setText(f"{len(skipped):,} file{'' if len(skipped) == 1 else 's'}")
        self.skipped_button.setEnabled(bool(skipped))

    def run_dir(self) -> Path | None:
        text = self.run_dir_edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_run_dir(self, path: Path | None) -> None:
        self.run_dir_edit.setText(str(path) if path else "")

    # -- parameters --------------------------------------------------------------------------------
    @property
    def image_side(self) -> int | None:
        """The images' typical shorter side, once the folder is surveyed."""
        return self._plan.look.side if self._plan is not None else None

    def choices(self) -> RunChoices:
        """What the form shows, in the words the command line uses too."""
        return RunChoices(**{name: control.value() for name, control in self.controls.items()})

    def config(self) -> RunConfig:
        """The RunConfig the form describes (the plan of the core, for this folder), on top of the
        last loaded config."""
        if self._plan is None:
            return build_config(self.choices(), self._base)
        return self._plan.with_choices(self.choices(), self._base).config

    @property
    def plan(self) -> Plan | None:
        """The plan last shown (:meth:`set_plan`): that of the folder open once it has been surveyed."""
        return self._plan

    def set_plan(self, plan: Plan) -> None:
        """Shows the representation a new run of this folder starts from (a pretrained backbone
        available here, else from scratch) and why; a form showing an earlier run's settings, or a
        representation the user chose after the previous default was shown, keeps them."""
        previous, self._plan = self._plan, plan
        self._show_note()
        if self._config_shown or (previous is not None and not self._shows(previous)):
            return
        c = choices_of(plan.config)
        for name in REPRESENTATION_PARAMETERS:
            self.controls[name].set_value(getattr(c, name))

    def _shows(self, plan: Plan) -> bool:
        """Whether the form still shows this plan's default representation."""
        c = choices_of(plan.config)
        return all(self.controls[name].value() == getattr(c, name)
                   for name in ("backbone", "representation"))  # fmt: skip

    def _show_note(self) -> None:
        reason = self._plan.reason if self._plan is not None else ""
        if self._config_shown and reason:
            reason = (
                f"Showing the settings of the run in this folder. A new run's default: {reason}"
            )
        self.representation_note.setText(reason)
        self.representation_note.setToolTip(reason)

    def set_config(self, cfg: RunConfig | None) -> None:
        """Shows an earlier run's settings (the base of the next run); None: the folder holds no run,
        so the next run starts from the defaults (the form keeps what the user chose)."""
        self._config_shown = cfg is not None
        self._show_note()
        if cfg is None:
            self._base = RunConfig()
            return
        self._base = cfg
        c = choices_of(cfg)
        for name, control in self.controls.items():
            control.set_value(getattr(c, name))

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
            self.weights.clear()  # its own pretrained weights, not another backbone's file

    def _keep_a_pretrained_backbone(self) -> None:
        """A pretrained representation with a backbone that has no pretrained weights (resnet_small)
        takes the core's pretrained backbone instead."""
        if self.representation.currentData() != SCRATCH:
            self.backbone.setCurrentText(pretrained_backbone(self.backbone.currentText()))

    def _sync_enabled(self) -> None:
        """Each control is enabled when its parameter matters (its declaration says when); the
        self-labelling box is unchecked when it does not (validation refuses it)."""
        c = self.choices()
        matters = {}
        for name, control in self.controls.items():
            when = control.declared.param.when
            matters[name] = when is None or when(c)
            control.set_enabled(matters[name])
        if not matters["selflabel"]:
            self.selflabel.setChecked(False)
