"""A finished run as one ``.keras`` classifier with its card and JSON beside it.

One small finished run (frozen ImageNet MobileNet, K-means, 600 real digits) is shared; the model must
open in a fresh interpreter that imports Keras only, reproduce the run's clusters of now on the run's
own images, and leave the run folder and the image folder as they were.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from semclust.cli import main
from semclust.core.images import load_image
from semclust.core.runfolder.results import load_run
from tests.conftest import tree_digest


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_head_reproduces_separable_clusters_with_an_empty_one(k):
    from semclust.core.runfolder.model_export import EMPTY_BIAS, fit_head

    rng = np.random.default_rng(0)
    centres = np.eye(8)[:k] * 3
    y = np.repeat(np.arange(k), 20)
    x = centres[y] + rng.normal(scale=0.3, size=(len(y), 8))
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    kernel, bias = fit_head(unit, y, k + 1)  # cluster k has no image (merged away)
    assert kernel.shape == (8, k + 1) and bias[k] == EMPTY_BIAS
    np.testing.assert_array_equal(np.argmax(unit @ kernel + bias, axis=1), y)


def test_a_large_run_is_fitted_on_a_sample_with_every_moved_image(monkeypatch):
    from semclust.core.runfolder import model_export

    monkeypatch.setattr(model_export, "MAX_FIT_IMAGES", 100)
    rows = model_export.fit_rows(1000, np.array([3, 999]), seed=0)
    assert len(rows) <= 102 and {3, 999} <= set(rows.tolist())
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(model_export.fit_rows(50, np.array([3])), np.arange(50))


@pytest.fixture(scope="module")
def finished(frozen_run) -> Path:
    return frozen_run[0]


@pytest.fixture(scope="module")
def pixels(finished) -> np.ndarray:
    """The run's own images as the model takes them: (N, 96, 96, 3) uint8 RGB."""
    run = load_run(finished)
    size = run.config.ingest.image_size
    return np.stack([load_image(run.absolute_path(i), size) for i in range(len(run.image_paths))])


def predict_in_fresh_interpreter(model: Path, pixels: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The model's outputs computed by a new Python that imports Keras alone (and checks that)."""
    np.save(tmp_path / "pixels.npy", pixels)
    code = textwrap.dedent(f"""
        import sys
        import keras
        import numpy as np
        model = keras.saving.load_model({str(model)!r})
        np.save({str(tmp_path / "out.npy")!r}, model.predict(np.load({str(tmp_path / "pixels.npy")!r}), verbose=0))
        ours = [m for m in sys.modules if m == "semclust" or m.startswith("semclust.")]
        assert not ours, ours
    """)  # noqa: E501
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "out.npy")


def test_the_model_opens_without_semclust_and_reproduces_the_runs_clusters(
    finished, pixels, digits_folder, tmp_path
):
    from semclust.core.runfolder.model_export import export_model

    before = tree_digest(finished), tree_digest(digits_folder)
    run = load_run(finished)
    result = export_model(run, tmp_path / "shared" / "digits.keras", check_images=32)

    assert result.model.is_file() and result.model.suffix == ".keras"
    assert result.card == tmp_path / "shared" / "digits.html" and result.card.is_file()
    info = json.loads(result.info.read_text(encoding="utf-8"))
    assert result.info == tmp_path / "shared" / "digits.json"
    assert info["cluster_names"] == [run.cluster_name(c) for c in range(run.n_clusters)]
    assert info["input"]["shape"] == [96, 96, 3]
    assert info["load"]["requires"] == ["keras"]  # the mid features' square root is plain ops
    assert info["agreement"]["features"] == pytest.approx(result.agreement, abs=1e-6)
    assert result.agreement >= 0.95 and result.checked == 32
    assert info["agreement"]["held_out"] == pytest.approx(result.held_out, abs=1e-6)
    assert result.held_out >= 0.85
    assert result.checked_agreement >= 0.9

    loaded = predict_in_fresh_interpreter(result.model, pixels, tmp_path)
    in_memory = result.classifier.predict(pixels, verbose=0)
    np.testing.assert_allclose(loaded, in_memory, atol=1e-5)
    assert loaded.shape == (len(run.image_paths), run.n_clusters)
    assert np.mean(loaded.argmax(axis=1) == run.assignment) >= 0.9
    assert before == (tree_digest(finished), tree_digest(digits_folder))


def test_corrections_are_reflected(finished, pixels, tmp_path):
    from semclust.core.runfolder.model_export import export_model

    run = load_run(finished)
    a = run.assignment
    target, emptied = int(a[0]), int(a[np.flatnonzero(a != a[0])[0]])
    moved = np.flatnonzero(a != target)[:5]
    run.corrections.move(moved, target)
    run.corrections.rename(target, "my ones")
    run.corrections.merge(emptied, target, run.assignment)
    assert not np.any(run.assignment == emptied)

    result = export_model(run, tmp_path / "corrected.keras", check_images=0)
    info = json.loads(result.info.read_text(encoding="utf-8"))
    assert info["cluster_names"][target] == "my ones"
    assert info["clusters"][emptied]["images"] == 0
    assert result.agreement >= 0.95 and result.checked == 0
    out = result.classifier.predict(pixels, verbose=0)
    assert np.all(out.argmax(axis=1)[moved] == target)  # the moves, learnt
    assert out[:, emptied].max() < 1e-6  # the merged-away cluster gets no image
    assert np.mean(out.argmax(axis=1) == run.assignment) >= 0.9


def test_the_command_line_writes_the_model_and_refuses_the_image_folder(
    finished, digits_folder, tmp_path, capsys
):
    before = tree_digest(finished), tree_digest(digits_folder)
    for refused, reason in [
        (digits_folder / "model.keras", "outside the image folder"),
        (digits_folder / "0" / "model.keras", "outside the image folder"),
        (tmp_path / "model.h5", ".keras"),
    ]:
        assert main(["export", str(finished), "--model", str(refused)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("semclust: ") and reason in err and "\n" not in err
        assert not refused.exists()
    assert before == (tree_digest(finished), tree_digest(digits_folder))

    out = tmp_path / "cli" / "digits.keras"
    assert main(["export", str(finished), "--model", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "agree" in printed
    assert {p.name for p in out.parent.iterdir()} == {"digits.keras", "digits.html", "digits.json"}
    assert before == (tree_digest(finished), tree_digest(digits_folder))  # no labels.csv either
