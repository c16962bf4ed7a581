"""Real ``semclust`` processes at the same time on one run folder (issue 17).

A test-only launcher (:data:`LAUNCHER`; the product is untouched) lets each process wait for the
other at chosen points (before it claims the folder, after it claims it, once it holds the lock,
before a write), so the races are played out exactly, not by chance: two runs started at the same
time into the same ``--out``, a run that loses the lock after it created the folder, and ``semclust
export`` reading a folder while a run rewrites it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semclust.cli import main
from semclust.core.runfolder.results import load_run
from tests.conftest import MOBILENET_WEIGHTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not MOBILENET_WEIGHTS.is_file(), reason="needs the local MobileNet weights (shared/DATA.md)"
    ),
]

#: ``python -c LAUNCHER run ...``: ``semclust run`` that plays the actions of $SEMCLUST_TEST_<POINT>
#: (``touch:NAME`` makes $SEMCLUST_TEST_SYNC/NAME, ``wait:NAME`` waits for it, comma separated) at
#: BEFORE_CLAIM, AFTER_CLAIM, AFTER_LOCK and before the write of the file $SEMCLUST_TEST_WRITE
#: (BEFORE_WRITE).
LAUNCHER = r"""
import contextlib, os, sys, time
from pathlib import Path
from semclust.core.runfolder import artefacts, ownership

sync = Path(os.environ["SEMCLUST_TEST_SYNC"])

def act(point):
    for action in filter(None, os.environ.get("SEMCLUST_TEST_" + point, "").split(",")):
        verb, _, name = action.partition(":")
        if verb == "touch":
            (sync / name).touch()
        else:
            deadline = time.monotonic() + 120
            while not (sync / name).exists():
                if time.monotonic() > deadline:
                    sys.exit(f"launcher: {name} never came")
                time.sleep(0.01)

claim, lock, atomic = ownership.claim_run_folder, ownership.run_folder_lock, artefacts.atomic_path

def claim_run_folder(paths):
    act("BEFORE_CLAIM")
    how = claim(paths)
    act("AFTER_CLAIM")
    return how

@contextlib.contextmanager
def run_folder_lock(paths):
    with lock(paths):
        act("AFTER_LOCK")
        yield

@contextlib.contextmanager
def atomic_path(path, suffix=""):
    if Path(path).name == os.environ.get("SEMCLUST_TEST_WRITE"):
        act("BEFORE_WRITE")
    with atomic(path, suffix) as tmp:
        yield tmp

ownership.claim_run_folder, ownership.run_folder_lock = claim_run_folder, run_folder_lock
artefacts.atomic_path = atomic_path
from semclust.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _command(folder: Path, out: Path, cache: Path, clusters: int = 4) -> list[str]:
    return ["run", str(folder), "--out", str(out), "--clusters", str(clusters), "--method",
            "kmeans", "--weights", str(MOBILENET_WEIGHTS), "--cache-dir", str(cache), "--seed", "0",
            "--quiet"]  # fmt: skip


def _start(args: list[str], sync: Path, **points: str) -> subprocess.Popen:
    env = {**os.environ, "SEMCLUST_TEST_SYNC": str(sync), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.update({f"SEMCLUST_TEST_{k}": v for k, v in points.items()})
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _clusters(csv_path: Path) -> dict[str, str]:
    with open(csv_path, encoding="utf-8", newline="") as f:
        return {row["path"]: row["cluster"] for row in csv.DictReader(f)}


def _assignment(run) -> dict[str, str]:
    return dict(zip(run.image_paths, map(str, run.assignment)))


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    from semclust.core.demo import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("concurrent") / "digits", limit=20)


def _one_runs_the_other_is_refused(a: subprocess.Popen, b: subprocess.Popen, out: Path) -> None:
    """Exactly one of two runs into ``out`` ran; the other stopped at once, naming the holder; the
    folder is whole."""
    ends = {}
    while len(ends) < 2:
        for p in (a, b):
            if p.pid not in ends and p.poll() is not None:
                ends[p.pid] = time.monotonic()
        time.sleep(0.05)
    outputs = {p.pid: p.communicate(timeout=60) for p in (a, b)}
    codes = {p.pid: p.returncode for p in (a, b)}
    assert sorted(codes.values()) == [0, 2], (codes, outputs)
    winner, loser = sorted(codes, key=codes.get)
    err = outputs[loser][1]
    assert f"in use by another run (process {winner} on" in err, err
    assert "Traceback" not in err
    assert ends[loser] < ends[winner]  # refused while the other still ran
    run = load_run(out)
    assert _clusters(out / "labels.csv") == _assignment(run)
    assert len(run.image_paths) == 200
    assert not list(out.glob(".*.tmp")) and not (out / ".semclust-run.lock").exists()


def test_two_runs_started_at_once_into_one_folder(digits, tmp_path):
    """Both wait for each other just before claiming the (new) folder: the closest race there is."""
    sync, out = tmp_path / "sync", tmp_path / "run"
    sync.mkdir()
    a, b = (
        _start(
            _command(digits, out, tmp_path / f"cache-{r}"),
            sync,
            BEFORE_CLAIM=f"touch:{r},wait:a,wait:b",
        )  # fmt: skip
        for r in ("a", "b")
    )
    _one_runs_the_other_is_refused(a, b, out)


def test_a_run_that_made_the_folder_and_lost_the_lock_leaves_it_to_the_other(digits, tmp_path):
    """A creates the folder; B claims it and takes the lock before A does: A must not remove the
    folder it made (B is running in it) nor its marker."""
    sync, out = tmp_path / "sync", tmp_path / "run"
    sync.mkdir()
    a = _start(_command(digits, out, tmp_path / "cache-a"), sync,
               AFTER_CLAIM="touch:a-claimed,wait:b-locked")  # fmt: skip
    b = _start(_command(digits, out, tmp_path / "cache-b"), sync,
               BEFORE_CLAIM="wait:a-claimed", AFTER_LOCK="touch:b-locked")  # fmt: skip
    _one_runs_the_other_is_refused(a, b, out)
    assert b.returncode == 0 and (out / ".semclust-run").is_file()


def test_export_while_a_run_rewrites_the_folder(digits, tmp_path, capsys):
    """A finished run is run again with other settings (3 clusters, not 4); exports while it
    writes (as its new clusters are saved, and before its report) give one run's clusters whole, or
    refuse; never a mix, never a half-written CSV."""
    sync, out, cache = tmp_path / "sync", tmp_path / "run", tmp_path / "cache"
    sync.mkdir()
    first = _start(_command(digits, out, cache), sync)
    assert first.wait(timeout=300) == 0, first.communicate()
    old = _clusters(out / "labels.csv")
    rerun = _start(
        _command(digits, out, cache, clusters=3), sync,
        WRITE="prototypes.json", BEFORE_WRITE="touch:paused,wait:go",
    )  # fmt: skip
    results = []

    def export(i: int) -> None:
        csv_path = tmp_path / f"export-{i}.csv"
        code = main(["export", str(out), "--csv", str(csv_path)])
        err = capsys.readouterr().err
        results.append((code, err, _clusters(csv_path) if code == 0 else None))
        if code != 0:
            assert code == 2 and str(out) in err and not csv_path.exists(), err

    i = 0
    while not (sync / "paused").exists():  # exports while the rerun redoes the clustering
        assert rerun.poll() is None, rerun.communicate()
        export(i := i + 1)
        time.sleep(0.1)
    export(i := i + 1)  # new probabilities and self-labelling, the old report: the run paused
    paused = results[-1]
    (sync / "go").touch()
    assert rerun.wait(timeout=300) == 0, rerun.communicate()
    new = _clusters(out / "labels.csv")
    assert set(new.values()) == {"0", "1", "2"} and new != old
    for _code, err, got in results:
        assert got in (None, old, new), err
    assert paused[0] == 0 and paused[2] == new, paused  # the new clusters, not the old report's
    run = load_run(out)
    assert _assignment(run) == new and run.n_clusters == 3
    assert main(["export", str(out), "--csv", str(tmp_path / "final.csv")]) == 0
    assert _clusters(tmp_path / "final.csv") == new
