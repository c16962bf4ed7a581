"""One real run end to end through the window: the core pipeline on a tiny folder of real digits."""

from __future__ import annotations

import time

import pytest
from gui_fakes import write_digits
from PySide6.QtCore import QTimer

from core.progress import STAGES


@pytest.mark.slow
def test_real_run_from_the_window(qtbot, window_factory, tmp_path, capsys):
    pytest.importorskip("core.run")
    folder = write_digits(tmp_path / "digits", per_class=8)
    w = window_factory()  # the real pipeline
    w.open_image_folder(folder, run_dir=tmp_path / "run")
    p = w.params
    p.clusters.setValue(3)
    p.image_size.setValue(32)
    p.pretext_epochs.setValue(1)
    p.scan_epochs.setValue(1)
    p.selflabel.setChecked(False)
    p.k.setValue(5)
    events, gaps, last = [], [], [time.perf_counter()]
    w.controller.progress.connect(events.append)

    def probe():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(probe)
    timer.start()
    with qtbot.waitSignal(w.controller.finished, timeout=300_000, raising=True):
        w.start_run()
    timer.stop()
    qtbot.waitUntil(lambda: not w.controller.is_running, timeout=30_000)
    assert w.session.run is not None and w.session.n_images == 80
    seen = [e.stage for e in events if e.kind in ("finished", "skipped")]
    assert set(seen) >= set(STAGES) - {"selflabel"}
    with capsys.disabled():
        print(
            f"\n[perf] real run: {len(gaps)} ticks, max event-loop latency {(max(gaps) - 0.01) * 1e3:.0f} ms"
        )
