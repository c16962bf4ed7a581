"""File > Export model…: enabled with a finished run, writes the model, its card and its JSON in the
background, refuses a path in the image folder."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def run_with_encoder(digits_folder, tmp_path):
    """The synthetic finished run, with a small encoder's weights and its features of the images."""
    from gui_fakes import make_run

    from semclust.core.config import RunConfig
    from semclust.core.images import load_image
    from semclust.core.representation.encoders import build_encoder
    from semclust.core.runfolder.artefacts import save_array, save_weights

    config = RunConfig(clusters=10).replace(**{"encoder.width": 8, "ingest.image_size": 32})
    run = make_run(digits_folder, tmp_path / "run", config)
    encoder = build_encoder(config.encoder, 32, config.seed)
    save_weights(run.paths.encoder_weights, encoder)
    pixels = np.stack([load_image(run.absolute_path(i), 32) for i in range(len(run.image_paths))])
    save_array(run.paths.features, encoder.predict(pixels, verbose=0).astype(np.float32))
    return run


def test_export_model_writes_the_model_of_the_open_run(
    qtbot, window_factory, run_with_encoder, tmp_path, save_as
):
    w = window_factory()
    assert not w.export_model_action.isEnabled()  # no run yet
    w.open_path(run_with_encoder.paths.root)
    assert w.export_model_action.isEnabled()
    assert w.export_model_action in w.menuBar().actions()[0].menu().actions()
    w.session.rename(0, "zeros")
    out = tmp_path / "shared" / "digits.keras"
    save_as.append(out)
    w.export_model_action.trigger()
    qtbot.waitUntil(lambda: "Exported the model" in w.statusBar().currentMessage(), timeout=60_000)
    assert out.is_file() and out.with_suffix(".html").is_file()
    info = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert info["cluster_names"][0] == "zeros"  # the rename made in the window


def test_export_model_refuses_the_image_folder(qtbot, window_factory, run_with_encoder, save_as):
    w = window_factory()
    w.open_path(run_with_encoder.paths.root)
    target = run_with_encoder.image_root / "model.keras"
    save_as.append(target)
    w.export_model_action.trigger()
    assert "outside the image folder" in w.last_message.text()
    assert not target.exists()
