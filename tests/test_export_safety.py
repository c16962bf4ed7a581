"""Exports under hostile destinations: links, a user's files, repeats, long names, the image folder.

Each test reproduces an attack of issue 17 (item 5) that wrote into the image folder, overwrote or crashed.
"""

from __future__ import annotations

import os

import pytest

from semclust.cli import main
from semclust.core.runfolder.export import export_cluster_folders, export_labels
from tests.conftest import tree_digest
from tests.test_export import AWKWARD, make_run


def test_a_planted_link_to_an_image_subfolder_is_never_followed(tmp_path):
    run = make_run(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(run.image_root / "sub", dest / "cluster 0")
    before = tree_digest(run.image_root)
    with pytest.raises(ValueError, match="never follows links"):
        export_cluster_folders(run, dest)
    assert tree_digest(run.image_root) == before


def test_a_dangling_link_in_the_destination_creates_nothing(tmp_path):
    run = make_run(tmp_path)
    dest = tmp_path / "dest"
    (dest / "cluster 0").mkdir(parents=True)
    planted = run.image_root / "planted.png"
    os.symlink(planted, dest / "cluster 0" / AWKWARD[0])
    with pytest.raises(ValueError, match="never overwrites"):
        export_cluster_folders(run, dest)
    assert not planted.exists() and not os.path.lexists(dest / "cluster 1")


def test_a_second_export_gives_the_same_tree(tmp_path):
    run = make_run(tmp_path)
    dest = tmp_path / "dest"
    export_cluster_folders(run, dest)
    first = tree_digest(dest)
    export_cluster_folders(run, dest)
    assert tree_digest(dest) == first
    assert len([p for p in dest.rglob("*") if p.is_file()]) == len(AWKWARD)


def test_a_users_file_in_the_destination_is_never_overwritten(tmp_path):
    run = make_run(tmp_path)
    dest = tmp_path / "dest"
    (dest / "cluster 0").mkdir(parents=True)
    mine = dest / "cluster 0" / AWKWARD[0]
    mine.write_bytes(b"my own file")
    with pytest.raises(ValueError, match="never overwrites"):
        export_cluster_folders(run, dest)
    assert mine.read_bytes() == b"my own file"
    assert [p.name for p in dest.rglob("*")] == ["cluster 0", AWKWARD[0]]  # nothing copied


def test_a_very_long_cluster_name_is_shortened(tmp_path):
    run = make_run(tmp_path)
    run.corrections.rename(0, "x" * 300)
    run.corrections.rename(1, "é" * 300)
    out = export_cluster_folders(run, tmp_path / "dest")
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and all(len(n.encode()) <= 255 for n in names)


def test_names_differing_only_in_case_do_not_merge_folders(tmp_path):
    run = make_run(tmp_path)
    run.corrections.rename(0, "Cats")
    run.corrections.rename(1, "cats")
    out = export_cluster_folders(run, tmp_path / "dest")
    assert len(list(out.iterdir())) == 3


@pytest.mark.parametrize("where", ["plain.png", "sub/labels.csv", "new.csv"])
def test_a_csv_inside_the_image_folder_is_refused(tmp_path, where):
    run = make_run(tmp_path)
    before = tree_digest(run.image_root)
    with pytest.raises(ValueError, match="outside the image folder"):
        export_labels(run, run.image_root / where)
    assert tree_digest(run.image_root) == before


def test_the_cli_checks_the_folders_before_writing_the_csv(tmp_path, capsys):
    run = make_run(tmp_path)
    csv_path = tmp_path / "labels.csv"
    code = main(["export", str(run.paths.root), "--csv", str(csv_path),
                 "--folders", str(run.image_root / "copies")])  # fmt: skip
    assert code == 2 and "outside the image folder" in capsys.readouterr().err
    assert not csv_path.exists() and not (run.image_root / "copies").exists()
    code = main(["export", str(run.paths.root), "--csv", str(run.image_root / "plain.png")])
    assert code == 2 and "outside the image folder" in capsys.readouterr().err
