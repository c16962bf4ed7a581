"""Progress in the terminal: one bar per stage, a plain log when the output is not a terminal.

:class:`ConsoleProgress` takes the pipeline's :class:`~semclust.core.progress.Progress` events (it is a
``ProgressCallback``). On a terminal each stage gets a tqdm bar with its rate and time left; anywhere else
(a file, a pipe, CI) it writes a few plain lines per stage and never a carriage return; with
``quiet=True`` it writes nothing (errors are the caller's to print). :func:`silence_backend_noise` hides
TensorFlow's start-up chatter before TensorFlow is imported.

Example:
    >>> import io
    >>> from semclust.core.progress import Progress
    >>> log = io.StringIO()                      # not a terminal: plain lines
    >>> with ConsoleProgress(stream=log) as show:
    ...     show(Progress("neighbours", "started"))
    ...     show(Progress("neighbours", "progress", 4, 4, message="mining neighbours"))
    ...     show(Progress("neighbours", "finished", 1, 1, message="neighbours done in 0.1 s"))
    >>> "\\r" in log.getvalue()
    False
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import time
from typing import TextIO

from tqdm import tqdm

from semclust.core.progress import Progress

#: What a step counts, per stage (tqdm shows the rate in these units); "step" otherwise.
UNITS = {"ingest": "image", "neighbours": "block", "projection": "step", "report": "step"}

#: A plain log line is written when a stage passes each of these fractions of its total.
LOG_FRACTIONS = (0.25, 0.5, 0.75)

#: Stages without a total get a plain progress line at most this often (seconds).
LOG_INTERVAL = 60.0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


def _clock(seconds: float) -> str:
    return tqdm.format_interval(max(0.0, seconds))


class ConsoleProgress:
    """Shows pipeline progress on a terminal or as a plain log; a ``ProgressCallback``.

    Args:
        quiet: show nothing.
        stream: where to write; ``sys.stdout`` (at call time) when None. A stream whose ``isatty()`` is
            true gets progress bars, any other a plain log.

    Events of a stage that was never ``started`` (sub-steps such as ``preview``) open a bar of their
    own; a change of ``total`` within a stage starts the bar afresh (a stage may count views, then
    batches). Call :meth:`close` (or use it as a context manager) so that a bar left open by an error or
    an interruption ends its line.
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream
        self._bars: dict[str, tqdm] = {}
        self._plain: dict[str, _PlainStage] = {}

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def interactive(self) -> bool:
        """True when progress bars are drawn (the stream is a terminal)."""
        return _is_terminal(self.stream)

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        if p.kind == "progress" and not p.step and not p.total and p.message:
            # A note (a fallback backbone, the layer features come from), not a count: always shown.
            line = f"[{p.stage:>10}] {p.message}"
            if self.interactive:
                tqdm.write(line, file=self.stream)
            else:
                self._write(line)
            return
        if self.interactive:
            self._bar_event(p)
        else:
            self._plain_event(p)

    def close(self) -> None:
        """Ends every open bar (leaving it on screen as it stands)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self._plain.clear()

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # terminal ----------------------------------------------------------------------------------------
    def _new_bar(self, stage: str, total: int) -> tqdm:
        old = self._bars.pop(stage, None)
        if old is not None:
            old.close()
        bar = tqdm(
            total=total or None,
            desc=f"{stage:>10}",
            unit=UNITS.get(stage, "step"),
            file=self.stream,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.2,
        )
        self._bars[stage] = bar
        return bar

    def _bar_event(self, p: Progress) -> None:
        if p.kind == "skipped":
            tqdm.write(f"{p.stage:>10}: {p.message or 'already done'} (skipped)", file=self.stream)
            return
        if p.kind == "started":
            self._new_bar(p.stage, p.total).set_postfix_str(p.message, refresh=True)
            return
        bar = self._bars.get(p.stage)
        if p.kind == "finished":
            if bar is None:
                tqdm.write(f"{p.stage:>10}: {p.message}", file=self.stream)
                return
            if bar.total:
                bar.update(bar.total - bar.n)
            bar.set_postfix_str(p.message, refresh=False)
            bar.close()
            del self._bars[p.stage]
            return
        if bar is None:
            bar = self._new_bar(p.stage, p.total)
        elif (p.total and bar.total != p.total) or p.step < bar.n:
            bar.reset(total=p.total or None)  # the same line, counting afresh
        bar.set_postfix_str(_detail(p), refresh=False)
        bar.update(p.step - bar.n)

    # plain log ---------------------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        self.stream.write(line.rstrip() + "\n")
        self.stream.flush()

    def _plain_event(self, p: Progress) -> None:
        tag = f"[{p.stage:>10}]"
        if p.kind == "skipped":
            self._write(f"{tag} skipped: {p.message or 'already done'}")
            return
        if p.kind == "started":
            self._plain[p.stage] = _PlainStage(p.total)
            self._write(f"{tag} {p.message or 'started'}")
            return
        if p.kind == "finished":
            self._plain.pop(p.stage, None)
            self._write(f"{tag} {p.message or 'done'}")
            return
        state = self._plain.get(p.stage)
        if state is None or (p.total and state.total != p.total) or p.step < state.step:
            state = self._plain[p.stage] = _PlainStage(p.total)
        line = state.advance(p.step)
        if line is not None:
            detail = _detail(p)
            self._write(f"{tag} {detail + ': ' if detail else ''}{line}")


class _PlainStage:
    """When a stage's plain log writes a line: at each of :data:`LOG_FRACTIONS` of its total (and at
    its end), or every :data:`LOG_INTERVAL` seconds when the total is unknown."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.step = 0
        self.start = time.monotonic()
        self.last = self.start
        self.next = 0

    def advance(self, step: int) -> str | None:
        now = time.monotonic()
        self.step = step
        elapsed = now - self.start
        if not self.total:
            if now - self.last < LOG_INTERVAL:
                return None
            self.last = now
            return f"{step} steps, {_clock(elapsed)} elapsed"
        fraction = min(1.0, step / self.total)
        marks = (*LOG_FRACTIONS, 1.0)
        passed = sum(fraction >= m for m in marks)
        if passed <= self.next:
            return None
        self.next = passed
        rate = step / elapsed if elapsed > 0 else 0.0
        left = (self.total - step) / rate if rate > 0 else 0.0
        # Under a second (work that was cached) a rate means nothing: 1,000,000 images "at 1e11/s".
        speed = f"{rate:.1f}/s, " if elapsed >= 1 else ""
        return (
            f"{step}/{self.total} ({100 * fraction:.0f}%), {speed}"
            f"{_clock(elapsed)} elapsed, {_clock(left)} left"
        )


def _detail(p: Progress) -> str:
    """The message, the loss and the cluster sizes of an event, as one short string."""
    parts = [p.message] if p.message else []
    if "loss" in p.losses:
        parts.append(f"loss={p.losses['loss']:.3f}")
    if p.partial and "cluster_sizes" in p.partial:
        parts.append("sizes=" + ",".join(str(s) for s in p.partial["cluster_sizes"]))
    return " ".join(parts)


# TensorFlow's start-up noise ---------------------------------------------------------------------

#: Lines TensorFlow (and XLA, CUDA stubs) print at start-up that say nothing a user can act on.
NOISE = re.compile(
    r"All log messages before absl::InitializeLog"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers"
    r"|cpu_feature_guard"
    r"|To enable the following instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning"
)


def silence_backend_noise(import_backend: bool = True) -> None:
    """Hides TensorFlow's start-up warnings; call it before anything imports TensorFlow.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless set: INFO and WARNING hidden, errors kept) and Python's
    ``tensorflow`` and ``absl`` loggers to ERROR. TensorFlow 2.21's C++ start-up lines (oneDNN, CUDA
    stubs, CPU features, ``cuInit``) are written through absl before its logging is initialised and
    ignore that variable, so with ``import_backend`` Keras and its backend are imported here, and their
    devices listed, with the process's standard error captured; afterwards every captured line that is
    not known noise (:data:`NOISE`) is written back, so a real error still shows.

    Args:
        import_backend: import ``keras`` (and its backend) now, under the capture. Off: only the
            environment and loggers are set, for commands that never load a model.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    if not import_backend:
        return
    with _filtered_stderr():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel(logging.ERROR)
            tf.config.list_physical_devices()  # initialises the platforms (the cuInit line) now


@contextlib.contextmanager
def _filtered_stderr():
    """Captures file descriptor 2 (C++ writes too), then replays the lines that are not :data:`NOISE`."""
    try:
        fd = sys.stderr.fileno()
    except (
        AttributeError,
        ValueError,
        OSError,
    ):  # stderr replaced by something without a descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines()
                if not NOISE.search(line)
            ]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
