"""A run folder may come from elsewhere: nothing in it is trusted (paths, indices, shapes, JSON)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from semclust.cli import main
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths, write_json
from semclust.core.runfolder.export import export_cluster_folders
from semclust.core.runfolder.image_list import unsafe_image_path
from semclust.core.runfolder.results import load_run
from tests.test_export import AWKWARD, make_run


def _tamper_images(run_dir, **changes):
    paths = RunPaths(run_dir)
    data = json.loads(paths.images.read_text(encoding="utf-8"))
    data.update(changes)
    paths.images.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    "bad",
    [
        "../../../../etc/passwd",
        "sub/../../outside.png",
        "/etc/shadow",
        "C:\\Windows\\win.ini",
        "\\\\server\\share\\x.png",
        "notes.txt",
        "",
        "a\x00b.png",
    ],
)
def test_a_path_outside_the_image_folder_refuses_the_run(tmp_path, bad):
    run = make_run(tmp_path)
    _tamper_images(run.paths.root, paths=[bad, *AWKWARD[1:]])
    with pytest.raises(RunFolderError, match="images.json"):
        load_run(run.paths.root)
    assert unsafe_image_path(bad)


def test_ordinary_relative_image_paths_are_accepted():
    for rel in AWKWARD + ["a/b/c.JPG", "..hidden-ish.png", "x..y.webp"]:
        assert unsafe_image_path(rel) is None, rel


def test_export_of_a_tampered_run_copies_nothing(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd.png").write_text("root:x:0:0")
    run = make_run(tmp_path)
    _tamper_images(run.paths.root, paths=["../secret/passwd.png", *AWKWARD[1:]])
    out = tmp_path / "out"
    code = main(["export", str(run.paths.root), "--folders", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "images.json" in err and "../secret/passwd.png" in err and "refused" in err
    assert not out.exists()


def test_a_link_leading_out_of_the_image_folder_is_refused_before_any_copy(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"private")
    run = make_run(tmp_path)
    link = run.image_root / "sub" / "link.png"
    os.symlink(outside, link)
    _tamper_images(run.paths.root, paths=[*AWKWARD[:-1], "sub/link.png"])
    run = load_run(run.paths.root)  # lexically fine: the link is caught where it is followed
    with pytest.raises(RunFolderError, match="outside the image folder"):
        run.absolute_path(len(AWKWARD) - 1)
    out = tmp_path / "copies"
    with pytest.raises(RunFolderError):
        export_cluster_folders(run, out)
    assert not out.exists() or not any(out.rglob("*.png"))


def test_a_root_that_moved_can_be_given(tmp_path, capsys):
    run = make_run(tmp_path)
    moved = tmp_path / "moved"
    run.image_root.rename(moved)
    assert load_run(run.paths.root, image_root=moved).absolute_path(0) == moved / AWKWARD[0]
    out = tmp_path / "copies"
    code = main(["export", str(run.paths.root), "--folders", str(out), "--image-root", str(moved)])
    assert code == 0, capsys.readouterr().err
    assert len(list(out.rglob("*.png"))) == len(AWKWARD)


@pytest.mark.parametrize("name", ["config", "images", "prototypes", "metrics", "corrections"])
def test_a_corrupt_json_file_is_named_in_the_message(tmp_path, capsys, name):
    run = make_run(tmp_path)
    path = getattr(run.paths, name)
    path.write_text('{\n  "paths": [\n    "a.png",\n  oops\n', encoding="utf-8")
    with pytest.raises(RunFolderError, match=rf"{path.name} is damaged: not valid JSON \(line 4"):
        load_run(run.paths.root)
    assert main(["export", str(run.paths.root)]) == 2
    assert path.name in capsys.readouterr().err


@pytest.mark.parametrize(
    "file, content, match",
    [
        ("probabilities", np.ones((3, 3)), "probabilities.npy does not match"),
        ("neighbours", np.full((len(AWKWARD), 2), 99), "neighbours.npy is damaged"),
        ("umap", np.zeros((len(AWKWARD) + 1, 2)), "umap.npy does not match"),
        ("prototypes", {"0": [0, 10**6]}, "prototypes.json is damaged"),
        ("prototypes", {"7": [0]}, "cluster 7 of 3"),
        ("corrections", {"moves": {"0": 9}}, "corrections.json does not match"),
        ("corrections", {"moves": {"500": 1}}, "corrections.json does not match"),
        ("corrections", {"names": "x"}, "corrections.json is damaged"),
        ("config", {"clusters": 3, "scan": "fast"}, "config.json is damaged"),
    ],
)
def test_inconsistent_files_are_refused_with_their_name(tmp_path, file, content, match):
    run = make_run(tmp_path)
    path = getattr(run.paths, file)
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        write_json(path, content)
    with pytest.raises(RunFolderError, match=match):
        load_run(run.paths.root)


def test_a_pickled_array_is_never_loaded(tmp_path):
    run = make_run(tmp_path)
    np.save(run.paths.umap, np.array([object()] * len(AWKWARD)), allow_pickle=True)
    with pytest.raises(RunFolderError, match="umap.npy is damaged"):
        load_run(run.paths.root)


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_files_written_atomically_follow_the_umask_not_owner_only(tmp_path):
    """mkstemp's temporary file is owner-only (0600); the labels CSV or report a user shares is not."""
    old = os.umask(0o022)
    try:
        import semclust.core.runfolder.artefacts as artefacts

        assert artefacts._UMASK == old  # read once at import: the process's own umask
        write_json(tmp_path / "shared.json", {"a": 1})
        expected = 0o666 & ~artefacts._UMASK
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == expected
    if not old & 0o044:  # the usual umask (022, 002): group and others can read
        assert expected & 0o044


def test_the_map_of_a_run_still_choosing_k_loads_alone_and_is_checked(tmp_path):
    from semclust.core.runfolder.artefacts import save_array

    run = make_run(tmp_path)
    paths, n = run.paths, len(run.image_paths)
    paths.umap.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="no umap.npy yet"):
        load_run(paths.root, map_only=True)
    layout = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    save_array(paths.umap, layout)
    shown = load_run(paths.root, map_only=True)
    assert shown.map_only and shown.preview and shown.n_clusters == 1
    assert shown.cluster_name(0) == "not clustered yet" and not shown.prototypes
    np.testing.assert_array_equal(shown.umap, layout)
    layout[0, 0] = np.nan
    save_array(paths.umap, layout)
    with pytest.raises(RunFolderError, match="umap.npy"):
        load_run(paths.root, map_only=True)
