"""kill -9 at the artefact writes of a real ``semclust run``, then the same command again (issue 17).

Each kill point is a write of the run folder: a small launcher (:data:`LAUNCHER`, test-only; the
product is untouched) wraps :func:`semclust.core.runfolder.artefacts.atomic_path`, through which every
artefact is written, and sends itself SIGKILL at the chosen write, either with the temporary half
written (``torn``: a kill in the middle of the write) or just after the rename (``after``: the
artefact is whole, its stage not yet recorded). After the kill, no file a later load reads may be
half written, and ``load_run``/``semclust export`` either refuse clearly or give the clusters of an
uninterrupted run; the same command then finishes with exactly those clusters, reusing the stages
recorded before the kill.

The runs are real command lines (a frozen MobileNet, K-means: seconds each), two chains of kills at
a time.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from semclust.cli import main
from semclust.core.runfolder import artefacts
from semclust.core.runfolder.artefacts import MARKER, RunFolderError, RunPaths
from semclust.core.runfolder.ownership import LOCK
from semclust.core.runfolder.results import load_run
from tests.conftest import MOBILENET_WEIGHTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not MOBILENET_WEIGHTS.is_file(), reason="needs the local MobileNet weights (shared/DATA.md)"
    ),
]

#: ``python -c LAUNCHER run ...``: ``semclust run`` with SIGKILL at the write of
#: $SEMCLUST_TEST_KILL (``name[#nth]:torn|after``) into the run folder $SEMCLUST_TEST_RUN; every
#: write into it is listed in $SEMCLUST_TEST_WRITES when set.
LAUNCHER = r"""
import contextlib, os, signal, sys
from pathlib import Path
from semclust.core.runfolder import artefacts

target, _, when = os.environ.get("SEMCLUST_TEST_KILL", "").partition(":")
name, _, nth = target.partition("#")
run = Path(os.environ["SEMCLUST_TEST_RUN"]).resolve()
log = os.environ.get("SEMCLUST_TEST_WRITES")
seen = {}
original = artefacts.atomic_path

@contextlib.contextmanager
def atomic_path(path, suffix=""):
    path = Path(path)
    if path.parent.resolve() != run:
        with original(path, suffix) as tmp:
            yield tmp
        return
    seen[path.name] = seen.get(path.name, 0) + 1
    hit = path.name == name and seen[path.name] == int(nth or 1)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{path.name}#{seen[path.name]}\n")
    with original(path, suffix) as tmp:
        yield tmp
        if hit and when == "torn":  # killed halfway through writing the temporary
            with open(tmp, "r+b") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    if hit and when == "after":  # the artefact is whole, its stage not recorded yet
        os.kill(os.getpid(), signal.SIGKILL)

artefacts.atomic_path = atomic_path
from semclust.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: The kill points, (write, how): one or more per stage and per write function (write_json,
#: write_csv, write_text, save_weights, array_file, save_array, the StageRecord, export's labels.csv).
#: Each chain runs in one run folder: the command killed at its first point, run again and killed at
#: its next, and so on (each later stage's kill resumes a folder killed earlier), then run to the end
#: (``FINISH``); a finished folder run again is killed once more (``prototypes.json``).
FINISH = ("", "finish")
CHAINS = [
    [
        (".semclust-run", "torn"),  # claim_run_folder: the marker of a folder just created
        ("skipped.csv", "after"),  # ingest (write_csv): images.json written, config.json not
        ("encoder.weights.h5", "torn"),  # pretext: save_weights
        ("umap.npy", "torn"),  # projection: save_array
        ("clustering.json", "torn"),  # clustering: its probabilities whole, its summary not
        ("metrics.json", "after"),  # report
        FINISH,
    ],
    [
        ("embeddings.npy", "torn"),  # pretext: array_file, features.npy already whole
        ("stages.json#3", "after"),  # neighbours recorded: resumed at the projection
        ("preview_probabilities.npy", "after"),  # preview, not yet recorded
        ("probabilities.npy", "after"),  # selflabel: the final probabilities, not yet recorded
        ("labels.csv", "torn"),  # the labels exported at the end of the run
        FINISH,
        ("prototypes.json", "after"),  # the same command on the finished folder: its report
        FINISH,
    ],
]
POINTS = [p for chain in CHAINS for p in chain if p != FINISH]
RERUN = ("prototypes.json", "after")


def _id(point: tuple[str, str]) -> str:
    return ":".join(point)


def _command(folder: Path, out: Path, cache: Path) -> list[str]:
    return [str(folder), "--out", str(out), "--clusters", "4", "--method", "kmeans",
            "--weights", str(MOBILENET_WEIGHTS), "--cache-dir", str(cache), "--seed", "0"]  # fmt: skip


def _semclust(args: list[str], out: Path, kill: str = "", writes: Path | None = None):
    env = {**os.environ, "SEMCLUST_TEST_RUN": str(out), "SEMCLUST_TEST_KILL": kill}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if writes is not None:
        env["SEMCLUST_TEST_WRITES"] = str(writes)
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, "run", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _clusters(csv_path: Path) -> dict[str, str]:
    with open(csv_path, encoding="utf-8", newline="") as f:
        return {row["path"]: row["cluster"] for row in csv.DictReader(f)}


@dataclass
class Kill:
    """One kill point: the killed command, the folder as it left it, and the folder the next
    command of its chain left (killed at the next point, or finished)."""

    killed: subprocess.CompletedProcess
    snapshot: Path
    after: Path | None = None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted reference run, then every chain's killed and resumed commands."""
    from semclust.core.demo import write_digits_folder

    base = tmp_path_factory.mktemp("kills")
    folder = write_digits_folder(base / "digits", limit=25)  # 250 images of 8x8 pixels
    ref_out, writes = base / "reference", base / "writes.txt"
    kills: dict[tuple[str, str], Kill] = {}
    finished: list[tuple[subprocess.CompletedProcess, Path]] = []

    def chain(n: int) -> None:
        out, cache = base / f"chain{n}" / "run", base / f"chain{n}" / "cache"
        previous = None
        for step, point in enumerate(CHAINS[n]):
            done = _semclust(
                _command(folder, out, cache), out, "" if point == FINISH else _id(point)
            )
            state = base / f"chain{n}" / f"{step}-{point[1]}"
            shutil.copytree(out, state)
            if previous is not None:
                previous.after = state
            if point == FINISH:
                finished.append((done, state))
                previous = None
            else:
                kills[point] = previous = Kill(done, state)

    def reference_then_chain() -> None:
        ref = _semclust(_command(folder, ref_out, base / "ref-cache"), ref_out, writes=writes)
        assert ref.returncode == 0, ref.stderr
        chain(0)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for job in [pool.submit(reference_then_chain), pool.submit(chain, 1)]:
            job.result()
    return {
        "reference": _clusters(ref_out / "labels.csv"),
        "writes": writes.read_text(encoding="utf-8").split(),
        "kills": kills,
        "finished": finished,
    }


@pytest.mark.parametrize("point", POINTS, ids=_id)
def test_a_kill_leaves_nothing_half_written_that_a_load_accepts(runs, point, tmp_path, capsys):
    kill: Kill = runs["kills"][point]
    name, how = point
    assert (name if "#" in name else f"{name}#1") in runs["writes"]  # a write of every run
    assert kill.killed.returncode == -signal.SIGKILL, kill.killed.stderr  # killed there
    snap = kill.snapshot
    # Every file under an artefact's own name is whole (the temporaries are apart, dot-named).
    artefact_names = {
        getattr(RunPaths(snap), a).name
        for a in dir(RunPaths)
        if isinstance(getattr(RunPaths, a), property)
    }
    for p in snap.iterdir():
        if p.name in artefact_names and p.suffix in (".npy", ".json", ".h5"):
            assert artefacts.intact(p), p
    if how == "torn":  # the half-written temporary is there, under a name nothing loads
        assert list(snap.glob(f".{name.split('#')[0]}.*"))
    try:
        loaded = load_run(snap)
    except (FileNotFoundError, RunFolderError) as exc:  # refused, saying where
        assert str(snap) in str(exc)
        loaded = None
    if point == RERUN:  # a finished run being run again stays readable throughout
        assert loaded is not None
    if loaded is not None:  # accepted: the uninterrupted run's clusters
        got = dict(zip(loaded.image_paths, map(str, loaded.assignment)))
        assert got == runs["reference"]
    exported = tmp_path / "labels.csv"
    code = main(["export", str(snap), "--csv", str(exported)])
    err = capsys.readouterr().err
    if loaded is None:
        assert code == 2 and str(snap) in err and not exported.exists()
    else:
        assert code == 0 and _clusters(exported) == runs["reference"]


@pytest.mark.parametrize("point", POINTS, ids=_id)
def test_the_same_command_resumes_from_a_kill(runs, point):
    """The next command into the folder got past this kill, reusing every stage recorded before it
    (its own kill, or its end, is checked apart)."""
    kill: Kill = runs["kills"][point]
    record = kill.snapshot / "stages.json"
    before = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    record = kill.after / "stages.json"
    after = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    for stage, entry in before.items():
        if stage not in ("ingest", "report"):
            assert after[stage] == entry, stage


def test_every_chain_of_kills_finishes_with_the_clusters_of_an_uninterrupted_run(runs):
    assert len(runs["finished"]) == sum(chain.count(FINISH) for chain in CHAINS)
    for done, state in runs["finished"]:
        assert done.returncode == 0, done.stderr[-3000:]
        assert _clusters(state / "labels.csv") == runs["reference"]
        run = load_run(state)
        assert dict(zip(run.image_paths, map(str, run.assignment))) == runs["reference"]
        # No temporary and no lock is left.
        assert sorted(p.name for p in state.glob(".*")) == [MARKER]
        assert not (state / LOCK).exists()
