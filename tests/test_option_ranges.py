"""Every declared number keeps to its range, from the command line and from any caller of the core."""

from __future__ import annotations

import math

import pytest

from semclust.core.choices import RunChoices, build_config
from semclust.core.param import declared, out_of_range


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"pretext_epochs": -1}, "--pretext-epochs"),
        ({"seed": -1}, "--seed"),
        ({"scan_epochs": -3}, "--scan-epochs"),
        ({"k": 100_000}, "--k"),
        ({"entropy_weight": math.nan}, "--entropy-weight"),
        ({"image_size": 100_000}, "--image-size"),
        ({"max_megapixels": 100_000}, "--max-megapixels"),
    ],
)
def test_a_number_out_of_its_range_is_refused_in_one_line(change, flag):
    choices = RunChoices(**change)
    (problem,) = out_of_range(choices)
    assert problem.startswith(flag) and "out of range" in problem and "\n" not in problem
    with pytest.raises(ValueError, match="out of range"):
        build_config(choices)


def test_the_defaults_and_every_range_end_are_accepted():
    assert out_of_range(RunChoices()) == []
    for d in declared(RunChoices):
        if d.kind in ("int", "float") and d.param.range is not None:
            for end in d.param.range:
                value = int(end) if d.kind == "int" else float(end)
                assert out_of_range(RunChoices(**{d.name: value})) == [], d.name


def test_the_command_line_says_it_and_exits_2(capsys, tmp_path):
    from semclust.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", str(tmp_path), "--out", str(tmp_path / "out"), "--seed", "-1"])
    assert stop.value.code == 2
    assert "--seed -1 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_scan_settings_matter_only_when_the_run_trains_scan_heads():
    """With auto on a frozen backbone no SCAN heads train, so the window greys their settings out."""
    from dataclasses import replace

    when = {d.name: d.param.when for d in declared(RunChoices)}
    frozen_auto = RunChoices(representation="frozen", backbone="mobilenet", method="auto")
    assert not when["scan_epochs"](frozen_auto) and not when["entropy_weight"](frozen_auto)
    assert when["selflabel"](frozen_auto) and when["update_encoder"](frozen_auto)
    assert when["scan_epochs"](replace(frozen_auto, selflabel=True))
    assert when["scan_epochs"](replace(frozen_auto, method="scan"))
    assert when["scan_epochs"](replace(frozen_auto, representation="scratch", backbone=None))
    assert not when["selflabel"](replace(frozen_auto, method="kmeans"))


def test_an_unwritable_run_folder_or_a_file_that_is_not_weights_is_one_line(
    capsys, tmp_path, digits_folder, monkeypatch
):
    from semclust.cli import main
    from semclust.core.runfolder import ownership

    def run(*options):
        code = main(["run", str(digits_folder), "--clusters", "10", "--quiet", *options])
        return code, capsys.readouterr().err

    code, err = run("--out", "/proc/semclust-run")
    assert code == 2 and "cannot be written" in err and "Traceback" not in err

    not_weights = tmp_path / "notes.weights.h5"
    not_weights.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, err = run("--out", str(tmp_path / "r1"), "--weights", str(not_weights))
    assert code == 2 and "is not a Keras weights file" in err and "Traceback" not in err

    def read_only(paths):  # root may write anywhere: the refusal is simulated where it happens
        raise PermissionError(13, "Permission denied", str(paths.root))

    monkeypatch.setattr(ownership, "run_folder_lock", read_only)
    code, err = run("--out", str(tmp_path / "r2"))
    assert code == 2 and "Permission denied" in err and "choose another run folder" in err
    assert not (tmp_path / "r2").exists()  # the folder it made for the run is gone again


def test_the_pixel_limit_is_given_in_megapixels_and_comes_back_as_chosen():
    from semclust.core.choices import choices_of
    from semclust.core.config import IngestConfig

    assert build_config(RunChoices()).ingest.max_image_pixels == IngestConfig.max_image_pixels
    raised = build_config(RunChoices(max_megapixels=300))
    assert raised.ingest.max_image_pixels == 300_000_000
    assert choices_of(raised).max_megapixels == 300
    assert choices_of(build_config(RunChoices())).max_megapixels is None
