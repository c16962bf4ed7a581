"""The window's working state lives in Workspace: folders, what a run folder holds, damaged run folders."""

from __future__ import annotations

import json

from semclust.core.runfolder.artefacts import RunPaths
from semclust.gui.workspace import Workspace, default_run_dir


def test_a_tampered_run_folder_is_a_message_not_a_crash(qtbot, window_factory, finished_run):
    images = RunPaths(finished_run.paths.root).images
    data = json.loads(images.read_text(encoding="utf-8"))
    data["paths"][0] = "../../../../etc/passwd"
    images.write_text(json.dumps(data), encoding="utf-8")
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert w.session.run is None
    assert w.last_message is not None
    assert "images.json" in w.last_message.text() and "refused" in w.last_message.text()
    assert not w.export_folders_action.isEnabled()


def test_a_corrupt_config_is_named(qtbot, window_factory, finished_run):
    RunPaths(finished_run.paths.root).config.write_text("{ not json", encoding="utf-8")
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert w.session.run is None
    assert "config.json is damaged" in w.last_message.text()


def test_workspace_reports_what_a_run_folder_holds(qtbot, finished_run, digits_folder):
    ws = Workspace()
    found = {}
    ws.runFound.connect(lambda run: found.setdefault("runs", []).append(run))
    ws.configFound.connect(lambda cfg: found.setdefault("config", cfg))
    ws.surveyed.connect(lambda n, classes: found.setdefault("survey", []).append((n, classes)))
    assert ws.open_run(finished_run.paths.root)
    assert found["runs"][-1] is not None and len(found["runs"][-1].image_paths) == 300
    assert found["config"].clusters == 10
    assert found["survey"][-1][0] == 300 and len(found["survey"][-1][1]) == 10
    assert ws.image_folder == digits_folder.resolve()
    assert ws.run_dir_problem() is None


def test_run_folder_checks(qtbot, tmp_path, digits_folder):
    ws = Workspace()
    assert ws.run_dir_problem() == "Open a folder of images first."
    with qtbot.waitSignal(ws.surveyed, timeout=10_000, check_params_cb=lambda n, c: n is not None):
        assert ws.open_image_folder(digits_folder)
    assert ws.run_dir == default_run_dir(digits_folder)
    ws.set_run_dir(digits_folder / "0" / "run")
    assert "outside the image folder" in ws.run_dir_problem()
    problems = []
    ws.problem.connect(lambda title, text: problems.append(text))
    assert not ws.open_image_folder(tmp_path / "missing")
    assert "is not a folder" in problems[-1]


def _chose_its_k(run_dir, agreement) -> None:
    """Makes ``run_dir`` a run that chose its k (best 10) among 2..12, ``agreement(k)`` its curve."""
    from semclust.core.runfolder.artefacts import write_json

    paths = RunPaths(run_dir)
    config = json.loads(paths.config.read_text(encoding="utf-8"))
    config["auto_clusters"] = [2, 12]
    write_json(paths.config, config)
    ks = list(range(2, 13))
    write_json(
        paths.choose_k,
        {"ks": ks, "curves": {"agreement": [agreement(k) for k in ks]},
         "score": [-abs(k - 10) for k in ks], "best": 10},
    )  # fmt: skip


def test_a_run_that_chose_its_k_shows_the_curve(qtbot, window_factory, finished_run):
    _chose_its_k(finished_run.paths.root, lambda k: 0.5 + 0.01 * k)
    w = window_factory()
    w.open_path(finished_run.paths.root)
    assert w.tabs.isTabEnabled(4) and w.k_plot.choice.best == 10
    said = w.progress.message.text()  # the number was chosen: said, and where to change it
    assert "Without labels, 10 clusters chosen from 2..12. The Number of clusters tab" in said
    w.open_path(finished_run.paths.root.parent)  # not a run: no curve
    assert not w.tabs.isTabEnabled(4)


def _recording_window(window_factory):
    """A window whose runs are the fake pipeline's, and the configurations they were started with."""
    from gui_fakes import fake_pipeline

    seen = []

    def recording(folder, out, cfg, **kwargs):
        seen.append(cfg)
        return fake_pipeline(folder, out, cfg, **kwargs)

    return window_factory(recording), seen


def test_picking_a_k_on_the_curve_reclusters_with_it(qtbot, window_factory, finished_run):
    _chose_its_k(finished_run.paths.root, lambda k: 0.5)
    w, seen = _recording_window(window_factory)
    w.open_path(finished_run.paths.root)
    assert w.k_plot.pick_button.isEnabled()
    with qtbot.waitSignal(w.controller.runningChanged, timeout=30_000,
                          check_params_cb=lambda running: not running):  # fmt: skip
        w.k_plot.kPicked.emit(7)
    assert seen and seen[-1].auto_clusters == (2, 12) and seen[-1].picked_clusters == 7
    assert w.params.choices().use_k == 7
    assert "You picked 7 on the curve of the number of clusters (10 scored best)" in (
        w.progress.message.text()
    )


def test_a_close_call_shows_the_other_methods_clusters_and_back_in_one_click(
    qtbot, window_factory, finished_run
):
    from semclust.core.runfolder.artefacts import write_json

    paths = RunPaths(finished_run.paths.root)
    metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    w, seen = _recording_window(window_factory)
    w.open_path(finished_run.paths.root)
    assert w.clusters.close_call.isHidden()  # no close call recorded: nothing offered
    close = {"method": "ward_umap", "moved": 0.3}
    assert "choice of method was close" not in w.statusBar().currentMessage()
    write_json(paths.metrics, metrics | {"method_kept": "kmeans", "close_alternative": close})
    w.open_path(finished_run.paths.root)
    assert not w.clusters.close_call.isHidden()
    status = w.statusBar().currentMessage()  # the window opens on the Map tab: said there too
    assert status.lower().endswith("the choice of method was close: see the clusters tab.")
    said = w.clusters.close_call_text.text()
    assert said.startswith("Ward on the same UMAP map scores nearly as well as K-means on the")
    with qtbot.waitSignal(w.controller.runningChanged, timeout=30_000,
                          check_params_cb=lambda running: not running):  # fmt: skip
        w.clusters.close_call_show.click()
    assert seen and seen[-1].method == "ward_umap"
    assert w.params.choices().method == "ward_umap"
    assert not w.clusters.close_call.isHidden()  # the other clusters shown: the way back offered
    assert w.clusters.close_call_text.text().startswith(
        "These are the clusters of Ward on the same UMAP map, which scored nearly as well as K-means"
    )
    assert w.clusters.close_call_show.text() == "Back to the kept clusters"
    paths.stages.unlink()  # the fake pipeline then writes the configuration it is given
    with qtbot.waitSignal(w.controller.runningChanged, timeout=30_000,
                          check_params_cb=lambda running: not running):  # fmt: skip
        w.clusters.close_call_show.click()
    assert seen[-1].method == "auto" and w.params.choices().method == "auto"
    assert w.clusters.close_call.isHidden()  # the fake's choice made no close call
    write_json(paths.metrics, metrics | {"method_kept": "kmeans", "close_alternative": close})
    with qtbot.waitSignal(w.controller.runningChanged, timeout=30_000,
                          check_params_cb=lambda running: not running):  # fmt: skip
        w.start_run()  # every stage done: the run ends with the close call just written
    assert "the choice of method was close" in w.statusBar().currentMessage().lower()
    assert w.clusters.close_call_show.text() == "Show its clusters"  # the close call again
    paths.stages.unlink()
    w.params.controls["clusters"].set_value(7)
    with qtbot.waitSignal(w.controller.runningChanged, timeout=30_000,
                          check_params_cb=lambda running: not running):  # fmt: skip
        w.clusters.close_call_show.click()  # Ward on the map, of the close call made with 10...
    assert seen[-1].method == "ward_umap" and seen[-1].clusters == 7
    assert w.clusters.close_call.isHidden()  # ...is not offered back for 7 clusters


def test_a_damaged_map_is_said_in_the_status_bar_and_the_run_is_not_shown(
    qtbot, window_factory, finished_run
):
    import numpy as np

    paths = RunPaths(finished_run.paths.root)
    umap = np.load(paths.umap)
    umap[3] = np.nan
    np.save(paths.umap, umap)
    w = window_factory()
    w.open_path(finished_run.paths.root)
    status = w.statusBar().currentMessage()
    assert w.session.run is None
    assert status.startswith("Could not open the run") and "umap.npy is damaged" in status
    assert "umap.npy" in w.last_message.text()


def test_two_clusters_that_look_like_one_group_are_said_where_the_window_opens(
    window_factory, finished_run, monkeypatch
):
    """The merge hint lives in the Clusters tab; a run opens on the Map tab, so the status bar points
    there (after the number of clusters chosen by default, the hint's pair shared its class in 10
    of 12 runs)."""
    from semclust.core.metrics import LookAlike
    from semclust.gui.session import Session

    w = window_factory()
    monkeypatch.setattr(Session, "look_alike", lambda self: None)
    w.open_path(finished_run.paths.root)
    assert "may be one group" not in w.statusBar().currentMessage()
    pair = LookAlike(into=3, merged=7, score=0.5, merged_share=0.4, into_share=0.05)
    monkeypatch.setattr(Session, "look_alike", lambda self: pair if self.run else None)
    w.open_path(finished_run.paths.root)
    said = w.statusBar().currentMessage()
    assert said.endswith("Clusters 7 and 3 may be one group: see the Clusters tab.")
