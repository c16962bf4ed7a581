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
    assert "k = 7" in plot.summary.text()


def test_plot_follows_a_new_choice_and_clears(qtbot):
    plot = ChooseKPlot()
    qtbot.addWidget(plot)
    plot.set_choice(_choice())
    other = KChoice(ks=(2, 3, 4), curves={"agreement": (0.9, 0.8, 0.5)}, score=(0, 2, 1), best=3)
    plot.set_choice(other)
    assert set(plot.curves) == {"agreement"}
    assert plot.marker.value() == 3 and plot.marker.label.format == "k = 3"
    np.testing.assert_array_equal(plot.score_curve.getData()[0], [2, 3, 4])

    plot.set_choice(None)
    assert not plot.marker.isVisible()
    assert plot.curves == {}
    x, _ = plot.score_curve.getData()
    assert x is None or len(x) == 0
    assert "not chosen" in plot.summary.text()
