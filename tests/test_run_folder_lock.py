"""One run at a time in a run folder (issue 17, item 11): a second run is refused, naming the holder."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from semclust.core.config import RunConfig
from semclust.core.images import InputError
from semclust.core.runfolder.artefacts import RunFolderError, RunPaths
from semclust.core.runfolder.ownership import LOCK, claim_run_folder, run_folder_lock


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _hold(paths: RunPaths, pid: int, host: str | None = None) -> None:
    holder = {"pid": pid, "host": host or platform.node(), "since": "2026-12-04 10:00:00"}
    (paths.root / LOCK).write_text(json.dumps(holder))


@pytest.fixture()
def paths(tmp_path) -> RunPaths:
    paths = RunPaths(tmp_path / "run")
    claim_run_folder(paths)
    return paths


def test_the_lock_is_held_during_and_gone_after(paths):
    with run_folder_lock(paths):
        holder = json.loads((paths.root / LOCK).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == platform.node()
        with pytest.raises(RunFolderError, match=f"in use by another run \\(process {os.getpid()}"):
            with run_folder_lock(paths):
                pass
    assert not (paths.root / LOCK).exists()


def test_a_live_holder_is_refused_and_a_dead_ones_lock_taken_over(paths):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _hold(paths, sleeper.pid)
        with pytest.raises(RunFolderError, match=f"process {sleeper.pid} on"):
            with run_folder_lock(paths):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    _hold(paths, _dead_pid())
    with run_folder_lock(paths):
        assert json.loads((paths.root / LOCK).read_text())["pid"] == os.getpid()


def test_another_machines_lock_is_kept(paths):
    _hold(paths, _dead_pid(), host="another-machine")
    with pytest.raises(RunFolderError, match="another-machine"):
        with run_folder_lock(paths):
            pass
    assert json.loads((paths.root / LOCK).read_text())["host"] == "another-machine"


def test_a_second_run_into_a_folder_in_use_is_refused_before_it_writes(paths, digits_folder):
    from semclust.core.run import run_pipeline

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _hold(paths, sleeper.pid)
        before = sorted(p.name for p in paths.root.iterdir())
        config = RunConfig(clusters=10).replace(**{"pretext.epochs": 1})
        with pytest.raises(InputError, match="in use by another run"):
            run_pipeline(digits_folder, paths.root, config)
        assert sorted(p.name for p in paths.root.iterdir()) == before
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX's")
def test_two_takeovers_of_a_dead_processs_lock_at_once_let_one_run(paths):
    """The race the process id alone lost: both saw the dead holder, both took the lock over."""
    import threading

    _hold(paths, _dead_pid())
    barrier, ran, results = threading.Barrier(2), threading.Event(), []

    def take() -> None:
        barrier.wait()
        try:
            with run_folder_lock(paths):
                results.append("ran")
                ran.wait(5)  # hold it while the other tries
        except RunFolderError:
            results.append("refused")
            ran.set()

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["ran", "refused"]
    assert not (paths.root / LOCK).exists()
