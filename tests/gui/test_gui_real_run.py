"""One real run end to end through the window: the core pipeline on a tiny folder of real digits."""

from __future__ import annotations

import pytest
from gui_fakes import EventLoopProbe, write_digits

from semclust.core.progress import STAGES


@pytest.mark.slow
def test_real_run_from_the_window(qtbot, window_factory, tmp_path, capsys):
    pytest.importorskip("semclust.core.run")
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
    events, previews = [], []
    w.controller.progress.connect(events.append)
    w.controller.preview.connect(previews.append)

    probe = EventLoopProbe()
    probe.start()
    with qtbot.waitSignal(w.controller.finished, timeout=300_000, raising=True):
        w.start_run()
    probe.stop()
    qtbot.waitUntil(lambda: not w.controller.is_running, timeout=30_000)
    assert w.session.run is not None and w.session.n_images == 80
    seen = [e.stage for e in events if e.kind in ("finished", "skipped")]
    assert set(seen) >= set(STAGES) - {"selflabel"}
    # the K-means preview reached the window while the run went on (the map alone only with auto)
    assert [(r.preview, r.map_only, r.n_clusters) for r in previews] == [(True, False, 3)]
    with capsys.disabled():
        print(
            f"\n[perf] real run: {len(probe.gaps)} ticks, "
            f"max event-loop latency {probe.latency_ms():.0f} ms"
        )
