"""The plot of the automatic choice of k: curves over k, the chosen k marked, an empty state."""

import numpy as np

from semclust.core.clustering.k_choice import KChoice
from semclust.gui.panels.choose_k import ChooseKPlot, rescaled


def _choice() -> KChoice:
    ks = tuple(range(2, 13))
    x = np.asarray(ks, dtype=float)
    score = -((x - 7.0) ** 2)
    return KChoice(
        ks=ks,
        curves={"agreement": tuple(1.0 - 0.03 * x), "silhouette": tuple(0.1 + 0.0 * x)},
        score=tuple(score),
        best=7,
        seconds=12.0,
    )


def test_plot_shows_every_curve_and_marks_the_chosen_k(qtbot):
    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    choice = _choice()
    plot.set_choice(choice)

    x, y = plot.score_curve.getData()
    np.testing.assert_array_equal(x, choice.ks)
    np.testing.assert_allclose(y, rescaled(choice.score))
    assert y.max() == 1.0 and x[np.argmax(y)] == choice.best
    assert set(plot.curves) == {"agreement"}  # the flat silhouette is left out
    xa, ya = plot.curves["agreement"].getData()
    np.testing.assert_array_equal(xa, choice.ks)
    assert ya[0] == 1.0 and ya[-1] == 0.0  # decreasing curve rescaled onto 0..1
    np.testing.assert_allclose(rescaled([0.1, 0.1]), 0.5)  # a constant curve sits mid-height

    assert plot.marker.isVisible() and plot.marker.value() == 7
    assert plot.marker.label.format == "k = 7"
    assert plot.marker.label.toPlainText() == "k = 7"  # the text drawn, not only its format
    assert "7 clusters chosen from 2..12" in plot.summary.text()


def test_a_choice_at_the_edge_of_the_range_says_so_in_the_app(qtbot):
    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    at_top = KChoice(ks=(2, 3, 4), curves={}, score=(0, 1, 2), best=4, extra={"at_edge": True})
    plot.set_choice(at_top)
    said = plot.summary.text()
    assert "largest number tried" in said and "widen the Range for auto" in said


def test_the_ks_that_score_nearly_as_well_are_ringed(qtbot):
    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    near = KChoice(ks=(2, 3, 4, 5), curves={}, score=(0, 2, 1.99, 1), best=3,
                   extra={"near_best": [3, 4]})  # fmt: skip
    plot.set_choice(near)
    x, y = plot.near.getData()
    assert list(x) == [3, 4] and list(y) == list(rescaled(near.score)[1:3])
    assert "3..4 score nearly as well" in plot.summary.text()
    assert plot.legend.getLabel(plot.near).text == "nearly as well"
    plot.set_choice(_choice())  # no near_best recorded (a run from before): no rings
    assert len(plot.near.getData()[0]) == 0 and plot.legend.getLabel(plot.near) is None
    plot.set_choice(near)
    plot.set_choice(None)
    assert len(plot.near.getData()[0]) == 0


def test_plot_follows_a_new_choice_and_clears(qtbot):
    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    plot.set_choice(_choice())
    other = KChoice(ks=(2, 3, 4), curves={"agreement": (0.9, 0.8, 0.5)}, score=(0, 2, 1), best=3)
    plot.set_choice(other)
    assert set(plot.curves) == {"agreement"}
    assert plot.marker.value() == 3 and plot.marker.label.toPlainText() == "k = 3"
    np.testing.assert_array_equal(plot.score_curve.getData()[0], [2, 3, 4])

    plot.set_choice(None)
    assert not plot.marker.isVisible()
    assert plot.curves == {}
    x, _ = plot.score_curve.getData()
    assert x is None or len(x) == 0
    assert "not chosen" in plot.summary.text()


def test_the_legend_names_the_score_and_each_curve_in_words(qtbot):
    """The curve that is the score is drawn once, as the score, and no legend entry reads as a
    variable's name ("largest_share")."""
    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    modularity = (0.1, 0.5, 0.3)
    choice = KChoice(ks=(2, 3, 4), score=modularity, best=3, extra={"criterion": "modularity"},
                     curves={"modularity": modularity, "agreement": (0.9, 0.8, 0.5),
                             "largest_share": (0.6, 0.4, 0.3)})  # fmt: skip
    plot.set_choice(choice)
    assert set(plot.curves) == {"agreement", "largest_share"}
    texts = {plot.legend.getLabel(item).text for item in (plot.score_curve, *plot.curves.values())}
    assert texts == {
        "score: modularity",
        "neighbour links inside clusters",
        "largest cluster's share",
    }
    assert "The thick line is the score (modularity: the share of neighbour links" in (
        plot.summary.text()
    )
    plot.set_choice(KChoice(ks=(2, 3), curves={}, score=(0, 1), best=3))  # a run from before
    assert plot.legend.getLabel(plot.score_curve).text == "score"


def test_a_click_or_the_box_picks_a_k(qtbot):
    from pyqtgraph.GraphicsScene.mouseEvents import MouseClickEvent
    from PySide6.QtCore import QPointF, Qt

    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    plot.resize(600, 400)
    plot.show()
    qtbot.waitExposed(plot)
    plot.set_choice(_choice())
    assert plot.pick_box.value() == 7
    assert (plot.pick_box.minimum(), plot.pick_box.maximum()) == (2, 12)

    picked = []
    plot.kPicked.connect(picked.append)
    view = plot.plot.getPlotItem().getViewBox()
    scene_pos = view.mapViewToScene(QPointF(4.2, 0.5))

    class _Click(MouseClickEvent):
        def __init__(self, pos):
            self._scenePos, self._button = pos, Qt.MouseButton.LeftButton

        def scenePos(self):
            return self._scenePos

        def button(self):
            return self._button

    plot._on_click(_Click(scene_pos))
    assert picked == [4] and plot.pick_box.value() == 4

    plot.pick_box.setValue(9)
    plot.pick_button.click()
    assert picked == [4, 9]

    plot.set_in_use(9)
    assert plot.in_use.isVisible() and plot.in_use.value() == 9
    plot.set_in_use(7)  # the chosen k itself: its own mark says it
    assert not plot.in_use.isVisible()
    plot.set_choice(None)
    assert not plot.pick_button.isEnabled()
