"""Terminal progress: bars on a terminal, a plain log elsewhere, nothing when quiet."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from semclust import console
from semclust.console import NOISE, ConsoleProgress, silence_backend_noise
from semclust.core.progress import Progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _run_events(show: ConsoleProgress, steps: int = 40) -> None:
    """The events of a short run: a skipped stage, a trained stage, a stage that recounts, a substage."""
    show(Progress("ingest", "skipped", 1, 1, message="already done"))
    show(Progress("pretext", "started", message="pretext started"))
    for i in range(1, steps + 1):
        show(Progress("pretext", "progress", i, steps, losses={"loss": 1.0 / i}, message="epoch 1"))
    show(Progress("pretext", "finished", 1, 1, message="pretext done in 3.0 s"))
    show(Progress("clustering", "started", message="clustering started"))
    show(Progress("clustering", "progress", 2, 4, message="features of augmented views"))
    show(Progress("clustering", "progress", 4, 4, message="features of augmented views"))
    for i in range(1, 11):
        show(Progress("clustering", "progress", i, 10, partial={"cluster_sizes": [i, 10 - i]}))
    show(Progress("preview", "progress", 0, 1, message="K-means on the features"))
    show(Progress("clustering", "finished", 1, 1, message="clustering done in 1.0 s"))


def test_terminal_gets_one_bar_per_stage_with_rate():
    out = FakeTerminal()
    with ConsoleProgress(stream=out) as show:
        assert show.interactive
        _run_events(show)
    text = out.getvalue()
    assert "\r" in text  # bars redraw in place
    lines = text.split("\n")
    finals = [ln.rsplit("\r", 1)[-1] for ln in lines if ln.strip()]
    # Each stage ends as one finished line; the skipped stage is a plain line.
    assert any("ingest" in ln and "skipped" in ln for ln in finals)
    pretext = [ln for ln in finals if "pretext" in ln]
    assert len(pretext) == 1 and "40/40" in pretext[0] and "100%" in pretext[0]
    assert "step/s" in pretext[0] and "pretext done in 3.0 s" in pretext[0]
    clustering = [ln for ln in finals if ln.lstrip().startswith("clustering")]
    assert "10/10" in clustering[-1] and "clustering done in 1.0 s" in clustering[-1]
    assert any("preview" in ln for ln in finals)  # a substage never started gets its own bar


def test_a_recount_reuses_the_stage_bar():
    out = FakeTerminal()
    with ConsoleProgress(stream=out) as show:
        show(Progress("clustering", "started"))
        show(Progress("clustering", "progress", 4, 4, message="features of augmented views"))
        show(Progress("clustering", "progress", 1, 10, message="epoch 1"))
        show(Progress("clustering", "progress", 10, 10, message="epoch 1 done"))
        show(Progress("clustering", "finished", 1, 1, message="clustering done"))
    assert out.getvalue().count("\n") == 1  # one line, redrawn
    assert out.getvalue().rsplit("\r", 1)[-1].count("10/10") == 1


def test_plain_stream_gets_a_few_log_lines_per_stage(monkeypatch):
    clock = iter(range(10**6))  # each reading of the clock a second later
    monkeypatch.setattr(console.time, "monotonic", lambda: float(next(clock)))
    out = io.StringIO()
    show = ConsoleProgress(stream=out)
    assert not show.interactive
    _run_events(show, steps=400)
    show.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    pretext = [ln for ln in text.splitlines() if ln.startswith("[   pretext]")]
    # started, 25/50/75/100 %, finished: a few lines for 400 events
    assert len(pretext) == 6, pretext
    assert "100/400 (25%)" in pretext[1] and "left" in pretext[1] and "/s" in pretext[1]
    assert "loss=" in pretext[1]
    assert pretext[-1].endswith("pretext done in 3.0 s")
    assert "[    ingest] skipped: already done" in text
    assert "sizes=10,0" in text  # the last SCAN line carries the cluster sizes


def test_plain_log_gives_no_rate_for_work_done_in_under_a_second():
    out = io.StringIO()
    with ConsoleProgress(stream=out) as show:
        show(Progress("ingest", "started"))
        show(Progress("ingest", "progress", 1_000_000, 1_000_000, message="decoding images"))
    line = [ln for ln in out.getvalue().splitlines() if "1000000/1000000" in ln][0]
    assert "/s" not in line.replace("1000000/1000000", "") and "elapsed" in line


@pytest.mark.parametrize("stream", [io.StringIO, FakeTerminal])
def test_a_note_is_always_written(stream):
    out = stream()
    note = "Falling back to mobilenet"
    with ConsoleProgress(stream=out) as show:
        show(Progress("ingest", "progress", 0, 0, message=note))
        show(Progress("ingest", "started"))
    assert f"[    ingest] {note}" in out.getvalue()


def test_quiet_writes_nothing():
    for stream in (io.StringIO(), FakeTerminal()):
        with ConsoleProgress(quiet=True, stream=stream) as show:
            _run_events(show)
        assert stream.getvalue() == ""


def test_default_stream_is_stdout_at_call_time(capsys):
    show = ConsoleProgress()
    show(Progress("report", "started", message="report started"))
    show(Progress("report", "finished", 1, 1, message="report done in 0.1 s"))
    assert "report done in 0.1 s" in capsys.readouterr().out


def test_close_ends_a_bar_left_open():
    out = FakeTerminal()
    show = ConsoleProgress(stream=out)
    show(Progress("clustering", "progress", 3, 10))
    show.close()
    assert out.getvalue().endswith("\n")


def test_noise_pattern_keeps_real_errors():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1.1 1 port.cc:153] oneDNN custom operations are on. You may see slightly",
        "I0000 00:00:1.1 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU ...",
        "E0000 00:00:1.1 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    ]
    real = [
        "E0000 00:00:1.1 1 op_kernel.cc:1] OOM when allocating tensor with shape[1024,1024]",
        "Traceback (most recent call last):",
    ]
    assert all(NOISE.search(line) for line in noise)
    assert not any(NOISE.search(line) for line in real)


@pytest.mark.slow
def test_silence_backend_noise_hides_tensorflow_start_up_lines():
    """In a fresh process (TensorFlow not yet imported): no start-up chatter, real errors still shown."""
    code = (
        "import sys\n"
        "from semclust.console import silence_backend_noise\n"
        "silence_backend_noise()\n"
        "import keras\n"
        "keras.ops.sum(keras.ops.ones(3))\n"
        "print('a real error', file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "a real error" in done.stderr
    assert "oneDNN" not in done.stderr and "cuda drivers" not in done.stderr, done.stderr
    assert "absl::InitializeLog" not in done.stderr


def test_silence_without_import_sets_environment(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    silence_backend_noise(import_backend=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
