"""File > Save report…: enabled with a finished run, writes the page in the background, refuses a
path in the image folder."""

from __future__ import annotations

from html.parser import HTMLParser


class _Rows(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.rows += tag == "tr" and ("class", "cluster-row") in attrs


def test_save_report_writes_the_page_of_the_open_run(qtbot, window_factory, finished_run,
                                                    tmp_path, save_as):  # fmt: skip
    w = window_factory()
    assert not w.save_report_action.isEnabled()  # no run yet
    w.open_path(finished_run.paths.root)
    assert w.save_report_action.isEnabled()
    assert w.save_report_action in w.menuBar().actions()[0].menu().actions()
    w.session.rename(0, "<b>zeros</b>")
    out = tmp_path / "shared" / "card.html"
    save_as.append(out)
    w.save_report_action.trigger()
    qtbot.waitUntil(lambda: "Wrote the report" in w.statusBar().currentMessage(), timeout=20_000)
    text = out.read_text(encoding="utf-8")
    assert _Rows(text).rows == finished_run.n_clusters
    assert "&lt;b&gt;zeros&lt;/b&gt;" in text  # the rename made in the window, escaped


def test_save_report_refuses_the_image_folder(qtbot, window_factory, finished_run, save_as):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    target = finished_run.image_root / "report.html"
    save_as.append(target)
    w.save_report_action.trigger()
    assert "outside the image folder" in w.last_message.text()
    assert not target.exists()
