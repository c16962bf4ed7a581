"""New images assigned to a finished run without retraining (``semclust assign RUN FOLDER``).

One small finished run (frozen ImageNet MobileNet, K-means, 600 real digits) is shared by the tests;
images copied from its own folder must land in their own clusters and near their own places on the map.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from semclust.cli import main
from semclust.core.config import RunConfig
from semclust.core.progress import Cancelled, CancelToken
from semclust.core.runfolder.added import added_json, map_positions, read_additions, vote
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths
from semclust.core.runfolder.assign import assign_folder
from semclust.core.runfolder.export import export_labels, read_labels
from semclust.core.runfolder.results import load_run
from tests.conftest import FROZEN, tree_digest


def copy_some(digits_folder: Path, dest: Path, every: int = 6) -> dict[str, str]:
    """Copies every ``every``-th digit (flat, renamed) into ``dest``; returns {new name: original}."""
    originals = sorted(
        p.relative_to(digits_folder).as_posix() for p in digits_folder.rglob("*.png")
    )
    dest.mkdir(parents=True)
    copied = {}
    for i, rel in enumerate(originals[::every]):
        name = f"new_{i:03d}.png"
        shutil.copy(digits_folder / rel, dest / name)
        copied[name] = rel
    return copied


def test_copies_of_the_runs_images_get_their_own_clusters_and_places(
    run_copy, digits_folder, tmp_path
):
    run_dir, cache = run_copy
    copied = copy_some(digits_folder, tmp_path / "new")
    (tmp_path / "new" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    before = tree_digest(tmp_path / "new")
    run_files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    events = []

    result = assign_folder(run_dir, tmp_path / "new", events.append, cache_dir=cache)

    run = load_run(run_dir)
    index = {rel: i for i, rel in enumerate(run.image_paths)}
    added = result.added
    assert sorted(added.paths) == sorted(copied)
    own = np.array([index[copied[rel]] for rel in added.paths])
    same = np.mean(added.cluster == run.assignment[own])
    assert same >= 0.9, same
    # A copy's nearest neighbour is its original (same pixels, same encoder).
    assert np.mean(added.neighbours[:, 0] == own) >= 0.95
    assert added.similarity[:, 0].min() > 0.99
    # Near its original on the map: closer than a typical pair of images is.
    distance = np.linalg.norm(added.map - run.umap[own], axis=1)
    typical = np.median(np.linalg.norm(run.umap[own] - run.umap[own[::-1]], axis=1))
    assert np.median(distance) < 0.1 * typical, (np.median(distance), typical)
    assert ((added.confidence > 0) & (added.confidence <= 1)).all()
    # The corrupt file is skipped with a reason, and nothing of the user's or the run's changed.
    assert [rel for rel, _ in added.skipped] == ["broken.png"]
    assert "decoded" in added.skipped[0][1] or "not an image" in added.skipped[0][1]
    assert tree_digest(tmp_path / "new") == before
    assert all((run_dir / n).read_bytes() == b for n, b in run_files.items())
    assert result.space == "embeddings"
    assert {e.stage for e in events} >= {"ingest", "pretext", "neighbours"}
    additions = read_additions(run)
    assert len(additions) == len(copied)
    assert additions.embeddings(run.paths).shape == (len(copied), run.embeddings.shape[1])


def test_labels_csv_marks_the_added_images_and_a_second_assign_replaces_them(
    run_copy, digits_folder, tmp_path, capsys
):
    run_dir, cache = run_copy
    new = tmp_path / "new"
    copied = copy_some(digits_folder, new, every=20)
    args = ["assign", str(run_dir), str(new), "--cache-dir", str(cache), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"assigned: {len(copied)} images" in out and "skipped: 0 files" in out
    assert f"written: {added_json(RunPaths(run_dir))}" in out

    assert main(args) == 0  # the same folder again: replaced, not duplicated
    assert "replaced the" in capsys.readouterr().out
    other = tmp_path / "other"
    copy_some(digits_folder, other, every=50)
    assert main(["assign", str(run_dir), str(other), "--cache-dir", str(cache), "--quiet"]) == 0
    assert main(["export", str(run_dir), "--csv", str(tmp_path / "labels.csv")]) == 0
    rows = read_labels(tmp_path / "labels.csv")
    run = load_run(run_dir)
    assert list(rows[0])[:6] == [
        "path", "cluster", "cluster_name", "name_confidence", "confidence", "true_label",
    ]  # fmt: skip
    assert list(rows[0])[-1] == "added"
    own, added = rows[: len(run.image_paths)], rows[len(run.image_paths) :]
    assert {r["added"] for r in own} == {"0"}
    assert [r["path"] for r in own] == run.image_paths
    expected = sorted([str(new / n) for n in copied] + [str(p) for p in other.glob("*.png")])
    assert sorted(r["path"] for r in added) == expected  # absolute, each once
    assert {r["added"] for r in added} == {"1"} and {r["true_label"] for r in added} == {""}
    assert all(0 < float(r["confidence"]) <= 1 for r in added)
    data = json.loads(added_json(run.paths).read_text())
    assert [f["root"] for f in data["folders"]] == [str(new.resolve()), str(other.resolve())]
    assert len(list(run_dir.glob("added_embeddings-*.npy"))) == 1  # earlier generations removed


def test_the_users_corrections_count_in_the_vote_at_export(run_copy, digits_folder, tmp_path):
    run_dir, cache = run_copy
    copy_some(digits_folder, tmp_path / "new", every=30)
    result = assign_folder(run_dir, tmp_path / "new", cache_dir=cache)
    run = load_run(run_dir)
    first = int(result.added.cluster[0])
    target = (first + 1) % run.n_clusters
    run.corrections.merge(first, target, run.assignment)  # every image of that cluster moved
    rows = read_labels(export_labels(run, tmp_path / "labels.csv"))
    assert rows[len(run.image_paths)]["cluster"] == str(target)


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "No images found"),
        ("unreadable", "could be read"),
        ("missing", "does not exist"),
        ("not a run", "not a run folder"),
        ("unfinished", "has not finished"),
    ],
)
def test_errors_are_one_line_and_exit_2(run_copy, tmp_path, capsys, case, message):
    run_dir, cache = run_copy
    folder = tmp_path / "folder"
    folder.mkdir()
    if case == "unreadable":
        (folder / "a.png").write_bytes(b"")
        (folder / "b.jpg").write_text("not a picture")
    elif case == "missing":
        folder = tmp_path / "nowhere"
    elif case == "not a run":
        run_dir = tmp_path / "folder"
    elif case == "unfinished":
        RunPaths(run_dir).probabilities.unlink()
    assert main(["assign", str(run_dir), str(folder), "--cache-dir", str(cache), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("semclust: ") and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert not added_json(RunPaths(run_dir)).exists()


def test_a_run_folder_in_use_is_refused(run_copy, digits_folder, tmp_path, capsys):
    from semclust.core.runfolder.ownership import run_folder_lock

    run_dir, cache = run_copy
    copy_some(digits_folder, tmp_path / "new", every=60)
    with run_folder_lock(RunPaths(run_dir)):  # a run writing into the folder
        code = main(["assign", str(run_dir), str(tmp_path / "new"), "--cache-dir", str(cache)])
    assert code == 2 and "in use by another run" in capsys.readouterr().err
    assert not added_json(RunPaths(run_dir)).exists()


def test_a_cancelled_assignment_writes_nothing(run_copy, digits_folder, tmp_path):
    run_dir, cache = run_copy
    copy_some(digits_folder, tmp_path / "new", every=30)
    token = CancelToken()

    def cancel_at_features(p):
        if p.stage == "pretext":
            token.cancel()

    with pytest.raises(Cancelled):
        assign_folder(run_dir, tmp_path / "new", cancel_at_features, token, cache_dir=cache)
    assert not added_json(RunPaths(run_dir)).exists()
    assert not list(run_dir.glob("*added*"))


def test_a_damaged_additions_file_is_refused_by_name(run_copy, digits_folder, tmp_path):
    run_dir, cache = run_copy
    copy_some(digits_folder, tmp_path / "new", every=60)
    assign_folder(run_dir, tmp_path / "new", cache_dir=cache)
    where = added_json(RunPaths(run_dir))
    data = json.loads(where.read_text())
    data["folders"][0]["neighbours"][0][0] = 10**6  # an image the run does not have
    where.write_text(json.dumps(data))
    with pytest.raises(RunFolderError, match="added.json is damaged"):
        read_additions(load_run(run_dir))
    data["folders"][0]["neighbours"][0][0] = 0
    data["folders"][0]["paths"][0] = "../../etc/passwd.png"
    where.write_text(json.dumps(data))
    with pytest.raises(RunFolderError, match="leads out of"):
        read_additions(load_run(run_dir))


def test_a_rerun_over_a_damaged_additions_file_finishes_with_the_runs_own_labels(
    run_copy, digits_folder, tmp_path
):
    from semclust.core.run import run_pipeline

    run_dir, cache = run_copy
    copy_some(digits_folder, tmp_path / "new", every=60)
    assign_folder(run_dir, tmp_path / "new", cache_dir=cache)
    where = added_json(RunPaths(run_dir))
    where.write_text("{ not json")
    events = []
    run = run_pipeline(digits_folder, run_dir, FROZEN, events.append, cache_dir=cache)
    rows = read_labels(run.paths.labels_csv)
    assert len(rows) == len(run.image_paths)  # the run's own images, none added
    assert any("added.json" in (e.message or "") for e in events)
    assert where.read_text() == "{ not json"  # left as it was, for the user to see


def test_a_run_that_learnt_its_representation_is_searched_in_its_features(tmp_path):
    """SimCLR's projection head, which made the run's embeddings, is not kept: its features are."""
    from semclust.core.demo import write_digits_folder
    from semclust.core.run import run_pipeline

    digits = write_digits_folder(tmp_path / "digits", limit=6)
    quick = RunConfig(clusters=3, seed=0, method="kmeans").replace(
        **{"pretext.epochs": 1, "pretext.batch_size": 32, "neighbours.k": 5}
    )
    run = run_pipeline(digits, tmp_path / "run", quick, cache_dir=tmp_path / "cache")
    copied = copy_some(digits, tmp_path / "new", every=3)
    result = assign_folder(tmp_path / "run", tmp_path / "new", cache_dir=tmp_path / "cache")
    assert result.space == "features" and any("SimCLR" in n for n in result.notes)
    own = [run.image_paths.index(copied[rel]) for rel in result.added.paths]
    assert np.mean(result.added.neighbours[:, 0] == own) >= 0.95
    assert result.added.neighbours.shape == (len(copied), 5)


def test_vote_counts_neighbours_and_breaks_ties_by_similarity():
    assignment = np.array([0, 0, 1, 1, 2])
    neighbours = np.array([[0, 1, 2], [2, 0, 4], [4, 3, 2]])
    similarity = np.array([[0.9, 0.8, 0.7], [0.5, 0.9, 0.1], [0.2, 0.3, 0.4]])
    cluster, confidence = vote(neighbours, similarity, assignment, 3)
    # row 1: one vote each for 1, 0, 2: cluster 0's voter is the most similar
    assert cluster.tolist() == [0, 0, 1]
    assert np.allclose(confidence, [2 / 3, 1 / 3, 2 / 3])


def test_map_positions_are_the_mean_of_the_neighbours():
    umap = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    assert np.allclose(map_positions(np.array([[0, 1], [1, 2]]), umap), [[1, 0], [1, 2]])
    assert map_positions(np.array([[0, 1]]), None) is None
