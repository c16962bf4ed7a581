"""The Clusters tab's hint: two clusters that look like one group, merged in one click."""

from __future__ import annotations

import numpy as np

from semclust.core.metrics import look_alike


def test_a_cluster_cut_in_two_is_offered_as_one_group(qtbot, window_factory, finished_run):
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s, panel = w.session, w.clusters
    before = look_alike(s.assignment, finished_run.neighbours, s.n_clusters)
    assert panel.hint.isHidden() == (before is None)
    # Cut the largest cluster in two at random: its halves share most of their neighbours.
    big = int(np.bincount(s.assignment).argmax())
    members = np.flatnonzero(s.assignment == big)
    half = np.random.default_rng(0).permutation(members)[: len(members) // 2]
    made = s.new_cluster(half)
    into, merged, score, share, _ = s.look_alike()
    assert {into, merged} == {big, made} and score > 0.4
    assert not panel.hint.isHidden()
    assert f"Clusters {merged} and {into} may be one group: {share:.0%} of {merged}'s" in (
        panel.hint_text.text()
    )
    assert panel.hint_merge.text() == f"Merge {merged} into {into}"
    panel.hint_merge.click()
    assert (s.assignment[members] == into).all() and not (s.assignment == merged).any()
    assert s.look_alike() == before and panel.hint.isHidden() == (before is None)
    s.undo()  # one step
    assert (s.assignment[half] == made).all()
