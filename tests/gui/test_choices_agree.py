"""The window and the command line build a run's settings from one declaration of its parameters and
with one factory: every parameter is an option and a control, same choices, same config."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit

from semclust.cli import _parser, choices_from_args, config_from_args
from semclust.core.choices import AUTO_RANGE, FINETUNED, FROZEN, SCRATCH, RunChoices
from semclust.core.config import RunConfig
from semclust.core.param import declared, param
from semclust.core.plan import plan_run

# (command-line options, how the user sets the same in the window)
CASES = [
    ([], {}),
    (["--weights", "imagenet"], {"representation": FROZEN}),
    (["--weights", "w.weights.h5"], {"representation": FROZEN, "weights": "w.weights.h5"}),
    (
        ["--weights", "imagenet", "--pretext-epochs", "7"],
        {"representation": FINETUNED, "pretext_epochs": 7},
    ),
    (
        ["--clusters", "4", "--heads", "3", "--head-hidden", "128", "--labels-csv", "t.csv"],
        {"clusters": 4, "heads": 3, "head_hidden": 128, "labels_csv": "t.csv"},
    ),
    (["--image-size", "64", "--seed", "5", "--k", "10"], {"image_size": 64, "seed": 5, "k": 10}),
    (["--method", "kmeans"], {"method": "kmeans"}),
    (["--max-megapixels", "300"], {"max_megapixels": 300}),
    (["--clusters", "auto"], {"clusters": 1}),  # the spin box's lowest value reads "auto"
    (["--selflabel", "--entropy-weight", "2.5"], {"selflabel": True, "entropy_weight": 2.5}),
    (
        ["--clusters", "auto", "--clusters-range", "3,12", "--no-subfolder-labels"],
        {"clusters": 1, "clusters_range": (3, 12), "subfolder_labels": False},
    ),
    (["--weights", "imagenet", "--layer", "mid"], {"representation": FROZEN, "layer": "mid"}),
    (["--representation", "frozen"], {"representation": FROZEN}),
    (
        ["--update-encoder", "--scan-epochs", "7", "--selflabel", "--selflabel-epochs", "3"],
        {"update_encoder": True, "scan_epochs": 7, "selflabel": True, "selflabel_epochs": 3},
    ),
    (
        ["--backbone", "resnet50v2", "--weights", "imagenet"],
        {"representation": FROZEN, "backbone": "resnet50v2"},
    ),
    (
        ["--backbone", "efficientnet_lite2"],
        {"representation": FROZEN, "backbone": "efficientnet_lite2"},
    ),
    (["--backbone", "efficientnet_lite2", "--weights", "none"], {"backbone": "efficientnet_lite2"}),
]


def _set_in_window(params, choices: dict) -> None:
    """As a user would: each parameter's control, whatever its kind."""
    for name, value in choices.items():
        widget = getattr(params, name)
        if isinstance(widget, QComboBox) and widget.isEditable():
            widget.setCurrentText(value)
        elif isinstance(widget, QComboBox):
            widget.setCurrentIndex(widget.findData(value))
        elif isinstance(widget, QLineEdit):
            widget.setText(value)
        elif isinstance(widget, QCheckBox):
            widget.setChecked(value)
        else:
            widget.setValue(value)


@pytest.mark.parametrize("options, window", CASES)
def test_window_and_command_line_agree(qtbot, window_factory, options, window):
    params = window_factory().params
    if window.get("representation", SCRATCH) == SCRATCH:
        params.pretext_epochs.setValue(RunConfig().pretext.epochs)
    _set_in_window(params, window)
    from_cli = config_from_args(_parser().parse_args(["run", "imgs", "--out", "r", *options]))
    from_gui = params.config()
    assert from_gui.to_dict() == from_cli.to_dict()
    from_gui.validate()


def test_a_frozen_pretrained_backbone_runs_at_its_pretrained_size_in_both(qtbot, window_factory):
    params = window_factory().params
    params.representation.setCurrentIndex(params.representation.findData(FROZEN))
    assert params.config().ingest.image_size == 96  # was 32 in the window, 96 on the command line


def test_an_earlier_runs_settings_come_back_unchanged(qtbot, window_factory):
    params = window_factory().params
    chosen = ["--weights", "imagenet", "--heads", "2", "--labels-csv", "x"]
    cfg = config_from_args(
        _parser().parse_args(["run", "i", "--out", "r", *chosen, "--max-megapixels", "250"])
    )
    params.set_config(cfg)
    assert params.config() == cfg


def test_the_window_starts_from_the_default_representation_and_says_why(qtbot, settings):
    from semclust.core.representation.backbones import Representation
    from semclust.gui.main_window import MainWindow

    pretrained = Representation(
        "efficientnet_lite2", "/w/lite2.weights.h5", True, "Pretrained: found offline."
    )
    w = MainWindow(settings=settings, find_default=lambda small_grey_images=False: pretrained)
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.params.representation_note.text() == "Pretrained: found offline.")
    cfg = w.params.config()
    assert (cfg.encoder.backbone, cfg.encoder.weights, cfg.pretext.epochs) == (
        "efficientnet_lite2",
        "/w/lite2.weights.h5",
        0,
    )
    assert cfg.ingest.image_size == 260  # the backbone's own size
    args = _parser().parse_args(["run", "i", "--out", "r"])
    plan = plan_run(args.folder, choices_from_args(args), find_default=lambda grey: pretrained)
    assert plan.config == cfg  # the command line starts from the same
    assert plan.reason == w.params.representation_note.text()  # and says the same
    w.loader.shutdown()


def test_small_images_keep_a_pretrained_backbone_small_in_both(
    qtbot, window_factory, digits_folder
):
    from semclust.core.images import survey_folder, typical_side
    from semclust.core.representation.backbones import Representation

    w = window_factory()
    with qtbot.waitSignal(w.workspace.looked, timeout=10_000):
        w.open_image_folder(digits_folder)
    # small grey digits: the default is looked up again (in the background) for such images
    qtbot.waitUntil(lambda: "small grey: True" in w.params.representation_note.text())
    side = typical_side(survey_folder(digits_folder))
    assert w.params.image_side == side == 32  # the digits written at 32 px
    lite2 = Representation("efficientnet_lite2", "/w/l.weights.h5", True, "Pretrained.")
    w.params.set_plan(plan_run(digits_folder, find_default=lambda grey: lite2))
    args = _parser().parse_args(["run", str(digits_folder), "--out", "r"])
    from_cli = plan_run(args.folder, choices_from_args(args), find_default=lambda grey: lite2)
    assert from_cli.look.side == side and from_cli.look.small_grey
    from_cli = from_cli.config
    assert from_cli == w.params.config()
    assert from_cli.ingest.image_size == 96  # not 260: the images hold 32 px


def test_small_grey_images_get_their_default_unless_the_user_chose(qtbot, settings, digits_folder):
    from semclust.core.representation.backbones import Representation
    from semclust.gui.main_window import MainWindow
    from semclust.gui.panels.parameters import SCRATCH

    lite2 = Representation("efficientnet_lite2", "/w/l.weights.h5", True, "Photos.")
    mobilenet = Representation("mobilenet", "/w/m.weights.h5", True, "Small grey.")
    w = MainWindow(settings=settings, find_default=lambda small_grey_images: (
        mobilenet if small_grey_images else lite2))  # fmt: skip
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.params.representation_note.text() == "Photos.")
    w.open_image_folder(digits_folder)
    qtbot.waitUntil(lambda: w.params.representation_note.text() == "Small grey.")
    assert w.params.config().encoder.backbone == "mobilenet"

    w.params.representation.setCurrentIndex(w.params.representation.findData(SCRATCH))
    w.params.set_plan(plan_run(None, find_default=lambda grey: lite2))  # the user's choice stays
    cfg = w.params.config()
    assert (cfg.encoder.backbone, cfg.encoder.weights) == ("mobilenet", None)  # not lite2's
    assert cfg.pretext.epochs > 0
    w.loader.shutdown()


def test_a_photo_sized_folder_runs_a_convnet_near_its_images_size():
    from semclust.core.choices import default_image_size

    assert default_image_size("efficientnet_lite2", True, 172) == 192
    assert default_image_size("efficientnet_lite2", True, 1000) == 260
    assert default_image_size("efficientnet_lite2", True, None) == 260
    assert default_image_size("dinov2_small", True, 28) == 224  # a ViT keeps its patch grid
    assert default_image_size("mobilenet", True, 1000) == 96
    assert default_image_size("resnet_small", False, 1000) == 32


def test_picking_a_pretrained_backbone_in_the_window_means_its_weights(qtbot, window_factory):
    """As ``--backbone NAME`` does: picked from the list, a pretrained backbone is frozen with its own
    weights (not the previous backbone's weights file); resnet_small goes back to from scratch."""
    params = window_factory().params
    params.representation.setCurrentIndex(params.representation.findData(FROZEN))
    params.weights.setText("/w/mobilenet.weights.h5")
    params.representation.setCurrentIndex(params.representation.findData(SCRATCH))
    params.backbone.setCurrentText("efficientnet_lite2")
    params.backbone.textActivated.emit("efficientnet_lite2")
    options = ["run", "imgs", "--out", "r", "--backbone", "efficientnet_lite2"]
    assert params.config() == config_from_args(_parser().parse_args(options))
    params.backbone.setCurrentText("resnet_small")
    params.backbone.textActivated.emit("resnet_small")
    assert params.representation.currentData() == SCRATCH
    assert params.config().encoder.weights is None


def test_every_declared_parameter_is_an_option_and_a_control(qtbot, window_factory):
    """Its flag, default and help on the command line; its control, label and tooltip in the form."""
    run = next(a for a in _parser()._subparsers._group_actions).choices["run"]
    options = {o: a for a in run._actions for o in a.option_strings}
    params = window_factory().params
    labels = {label.text() for label in params.findChildren(QLabel)}
    assert choices_from_args(_parser().parse_args(["run", "f", "--out", "r"])) == RunChoices()
    names = [d.name for d in declared(RunChoices)]
    assert list(params.controls) == names  # the form's order is the declaration's
    for d in declared(RunChoices):
        assert options[d.param.flag].dest == d.name
        assert options[d.param.flag].help.startswith(d.param.help.replace("%", "%%"))
        widget = params.controls[d.name].widget
        assert getattr(params, d.name) is widget
        assert widget.toolTip() == (d.param.tip or d.param.help)
        if isinstance(widget, QCheckBox):
            assert widget.text() == d.param.label
        else:
            assert f"{d.param.label}:" in labels


@dataclass(frozen=True)
class WithViews(RunChoices):
    """RunChoices with one more declared parameter (SCAN's augmented views)."""

    views: int | None = param(
        None, "--views", "Augmented views", "Augmented views of every image for SCAN.",
        config="scan.views", range=(0, 16),
    )  # fmt: skip


def test_a_new_declared_parameter_reaches_the_config_through_both(qtbot, monkeypatch):
    """Declared once, a new parameter is an option, a control, and a config field, with no other
    edit: the front ends and the factory build everything from the declaration."""
    from semclust import cli
    from semclust.core import choices
    from semclust.gui.panels import parameters

    for module in (choices, cli, parameters):
        monkeypatch.setattr(module, "RunChoices", WithViews)
    args = cli._parser().parse_args(["run", "f", "--out", "r", "--views", "4"])
    from_cli = cli.config_from_args(args)
    assert from_cli.scan.views == 4
    by_default = RunConfig().replace(clusters=AUTO_RANGE[0], auto_clusters=AUTO_RANGE)  # auto
    assert cli.config_from_args(cli._parser().parse_args(["run", "f", "--out", "r"])) == by_default

    panel = parameters.ParametersPanel()
    qtbot.addWidget(panel)
    panel.pretext_epochs.setValue(RunConfig().pretext.epochs)
    assert panel.views.toolTip() == "Augmented views of every image for SCAN."
    panel.views.setValue(4)
    assert panel.config() == from_cli
    panel.set_config(from_cli.replace(**{"scan.views": 2}))  # an earlier run's, shown again
    assert panel.views.value() == 2 and panel.config().scan.views == 2
