"""The Clusters tab's hint: two clusters that look like one group, merged in one click."""

from __future__ import annotations

import numpy as np

from semclust.core.runfolder.artefacts import save_array
from semclust.core.runfolder.results import load_run


def _over_split(run):
    """The run's model as if it had cut its largest cluster's group in two: half of that group's
    images in the smallest cluster's column, the smallest cluster's own images in the largest's.
    Returns (the largest cluster, the smallest, the images moved between them)."""
    prob = np.load(run.paths.probabilities)
    pred = prob.argmax(1)
    sizes = np.bincount(pred, minlength=prob.shape[1])
    big, small = int(sizes.argmax()), int(sizes.argmin())
    group = np.flatnonzero(pred == big)
    half = np.random.default_rng(0).permutation(group)[: len(group) // 2]
    for rows, column in ((np.flatnonzero(pred == small), big), (half, small)):
        prob[rows] = 0.02
        prob[rows, column] = 1.0 - 0.02 * (prob.shape[1] - 1)
    save_array(run.paths.probabilities, prob.astype(np.float32))
    return big, small, half


def test_a_group_cut_in_two_is_offered_as_one(qtbot, window_factory, finished_run):
    big, small, half = _over_split(finished_run)
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s, panel = w.session, w.clusters
    found = s.look_alike()
    assert found is not None and {found.into, found.merged} == {big, small} and found.score > 0.4
    assert not panel.hint.isHidden()
    assert (
        f"Clusters {found.merged} and {found.into} may be one group: "
        f"{found.merged_share:.0%} of {found.merged}'s" in panel.hint_text.text()
    )
    assert panel.hint_merge.text() == f"Merge {found.merged} into {found.into}"
    panel.hint_merge.click()  # one click merges them, one undo takes it back
    assert (s.assignment[half] == found.into).all() and not (s.assignment == found.merged).any()
    s.undo()
    assert (s.assignment[half] == small).all()


def test_the_hint_leaves_out_what_the_user_set_apart(qtbot, window_factory, finished_run):
    """A cluster the user made (a split's new part too) is never offered back, nor a pair the user
    said is not one group; the next pair is offered instead, or none."""
    big, small, _ = _over_split(finished_run)
    w = window_factory()
    w.open_path(finished_run.paths.root)
    s, panel = w.session, w.clusters
    first = s.look_alike()
    panel.hint_dismiss.click()
    after = s.look_alike()
    assert after is None or {after.into, after.merged} != {first.into, first.merged}
    assert panel.hint.isHidden() == (after is None)
    kept = load_run(finished_run.paths.root).corrections.apart  # saved with the corrections
    assert kept == {(min(small, big), max(small, big))}
    s.undo()  # one step, like a correction
    assert s.look_alike() == first
    s.redo()
    assert s.look_alike() == after
    # Cut another cluster in two by hand: its halves share most of their neighbours, and are
    # still not offered, since the user made the new one.
    other = next(c for c in range(s.n_clusters) if c not in (big, small) and
                 (s.assignment == c).sum() >= 10)  # fmt: skip
    members = np.flatnonzero(s.assignment == other)
    made = s.new_cluster(members[::2])
    found = s.look_alike()
    assert found is None or made not in (found.into, found.merged)
