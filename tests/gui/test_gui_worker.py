"""The pipeline worker: signals in order, cancel and continue, errors reach the user."""

from __future__ import annotations

import functools

import pytest
from gui_fakes import fake_pipeline

from semclust.core.config import RunConfig
from semclust.core.progress import STAGES
from semclust.gui.worker import RunController, describe_error, running_threads


@pytest.fixture
def controller(qtbot):
    ctl = RunController(fake_pipeline)
    yield ctl
    ctl.shutdown(20_000)


def test_signals_arrive_in_order(qtbot, controller, digits_folder, tmp_path):
    events, order = [], []
    controller.progress.connect(events.append)
    controller.progress.connect(lambda e: order.append("progress"))
    controller.finished.connect(lambda run: order.append("finished"))
    controller.failed.connect(lambda msg: order.append(f"failed {msg}"))
    with qtbot.waitSignal(
        controller.runningChanged, timeout=30_000, check_params_cb=lambda r: not r
    ):
        controller.start(digits_folder, tmp_path / "run", RunConfig(clusters=10))
    assert order[-1] == "finished" and "failed" not in " ".join(order)
    started = [e.stage for e in events if e.kind == "started"]
    finished = [e.stage for e in events if e.kind == "finished"]
    assert started == list(STAGES) and finished == list(STAGES)
    for stage in STAGES:  # within a stage: started, progress..., finished
        kinds = [e.kind for e in events if e.stage == stage]
        assert kinds[0] == "started" and kinds[-1] == "finished"
        assert set(kinds[1:-1]) <= {"progress"}
    assert any(
        e.partial and "cluster_sizes" in e.partial for e in events if e.stage == "clustering"
    )
    assert not controller.is_running


def test_cancel_keeps_finished_stages_and_run_continues(qtbot, digits_folder, tmp_path):
    slow = functools.partial(fake_pipeline, slow_stage="clustering", delay=0.01)
    controller = RunController(slow)
    events = []
    controller.progress.connect(events.append)
    out = tmp_path / "run"
    with qtbot.waitSignal(controller.progress, timeout=30_000,
                          check_params_cb=lambda e: e.stage == "clustering" and e.kind == "progress"):  # fmt: skip
        controller.start(digits_folder, out, RunConfig(clusters=10))
    with qtbot.waitSignals([controller.cancelled, controller.runningChanged], timeout=10_000):
        controller.cancel()
    assert not any(e.kind == "finished" and e.stage == "clustering" for e in events)

    events.clear()
    fast = RunController(fake_pipeline)
    fast.progress.connect(events.append)
    with qtbot.waitSignal(fast.finished, timeout=30_000):
        fast.start(digits_folder, out, RunConfig(clusters=10))
    fast.shutdown()
    skipped = [e.stage for e in events if e.kind == "skipped"]
    assert skipped == ["ingest", "pretext", "neighbours", "projection", "choose_k", "preview"]
    assert [e.stage for e in events if e.kind == "started"][0] == "clustering"


def test_error_in_worker_is_reported(qtbot, controller, digits_folder, tmp_path):
    controller._pipeline = functools.partial(
        fake_pipeline, fail=("clustering", FloatingPointError("NaN loss at batch 2"))
    )
    with qtbot.waitSignal(controller.failed, timeout=30_000) as blocker:
        controller.start(digits_folder, tmp_path / "run", RunConfig(clusters=10))
    assert "NaN" in blocker.args[0] and "diverged" in blocker.args[0]
    qtbot.waitUntil(lambda: not controller.is_running, timeout=10_000)


def test_one_run_at_a_time(qtbot, digits_folder, tmp_path):
    controller = RunController(functools.partial(fake_pipeline, slow_stage="pretext"))
    controller.start(digits_folder, tmp_path / "run", RunConfig(clusters=10))
    with pytest.raises(RuntimeError):
        controller.start(digits_folder, tmp_path / "run2", RunConfig(clusters=10))
    assert controller.shutdown(20_000)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (MemoryError(), "out of memory"),
        (type("ResourceExhaustedError", (Exception,), {})("OOM when allocating"), "out of memory"),
        (FloatingPointError("nan"), "diverged"),
        (ValueError("No images found in /x."), "No images found"),
        (KeyError("boom"), "KeyError"),
    ],
)
def test_error_messages_are_readable(exc, words):
    assert words in describe_error(exc)


def test_the_kmeans_preview_is_shown_read_only_while_the_clustering_trains(
    qtbot, window_factory, digits_folder, tmp_path
):
    slow = functools.partial(fake_pipeline, slow_stage="clustering", delay=0.01)
    w = window_factory(slow)
    w.open_image_folder(digits_folder, run_dir=tmp_path / "run")
    with qtbot.waitSignal(w.controller.preview, timeout=30_000):
        w.start_run()
    run = w.session.run
    assert run is not None and run.preview and w.controller.is_running
    assert w.scatter.n_points() == len(run.image_paths)
    assert not w.export_csv_action.isEnabled() and not w.session.editable
    w.session.move([0, 1], 3)  # ignored: the preview is not the run's result
    assert not run.corrections.moves
    with qtbot.waitSignal(w.controller.finished, timeout=60_000):
        pass
    assert not w.session.run.preview and w.export_csv_action.isEnabled()


def test_with_clusters_auto_the_map_is_shown_before_the_k_choice(
    qtbot, window_factory, digits_folder, tmp_path
):
    slow = functools.partial(fake_pipeline, slow_stage="choose_k", delay=0.01)
    w = window_factory(slow)
    w.open_image_folder(digits_folder, run_dir=tmp_path / "run")
    w.params.controls["clusters"].set_value("auto")
    with qtbot.waitSignal(w.controller.preview, timeout=30_000):
        w.start_run()
    run = w.session.run
    assert run.map_only and run.preview and w.controller.is_running
    assert run.n_clusters == 1 and not run.prototypes
    assert run.cluster_name(0) == "not clustered yet"
    assert w.scatter.n_points() == len(run.image_paths)
    assert "clusters follow" in w.statusBar().currentMessage()
    assert not w.session.editable and not w.export_csv_action.isEnabled()
    w.session.set_current(0)  # no cluster, so no confidence or accuracy to show
    assert "not clustered yet" in w.neighbours.details.text()
    assert "confidence" not in w.neighbours.details.text()
    assert w.accuracy.empty.text() == "No clusters yet."
    assert w.clusters.table.rowCount() == 0 and w.clusters.naming_note.text() == "No clusters yet."
    with qtbot.waitSignal(w.controller.finished, timeout=60_000):
        pass
    assert not w.session.run.preview and not w.session.run.map_only


def test_many_short_runs_end_cleanly(qtbot, tmp_path):
    """A run that ends at once is the race that once crashed CI: the thread's ``finished`` reaches the
    window while the thread is still returning, and the controller must not destroy it then."""

    def instant(folder, out, config, progress, cancel):
        return None

    controller = RunController(instant)
    ended = []
    controller.finished.connect(lambda run: ended.append(run))
    for i in range(40):
        with qtbot.waitSignal(
            controller.runningChanged, timeout=10_000, check_params_cb=lambda r: not r
        ):
            controller.start(tmp_path, tmp_path / f"run{i}", RunConfig(clusters=10))
        assert not controller.is_running
    assert len(ended) == 40
    assert not running_threads()
