"""Corrections that teach the model (issue 20): how much ACC a user's corrections gain, moved alone
against moved then retrained, by simulating a user on labelled sets.

The start is the default run's clustering of each set: its default representation's cached features
(``bench/out/clustering/runs/<set>.npz``, made by ``bench.clustering`` with the pipeline; made here the
same way when missing), the neighbours mined as a run mines them, and what ``--method auto`` keeps on a
frozen backbone (:func:`~semclust.core.clustering.methods.auto_candidates`, seed 0).

The simulated user, in rounds of 10: among the images they see in a cluster whose majority label is not
theirs (and whose label is the majority of some other cluster), they pick 10 at random (a seeded
generator: seeds 0, 1, 2) and move each to the cluster where its label is the majority (the one holding
most images of that label when several are). With "retrain" they then press "Retrain with my
corrections" (:func:`semclust.core.clustering.refine.refine`: the mined neighbours vote again, a
corrected one 10 times; from the run's probabilities with every correction so far) and pick the next
10 from the retrained clusters. ACC (Hungarian) is measured after 10, 20, 30 and 50 corrections.

``--compare`` adds the other options measured before keeping the vote: a multinomial logistic
regression (scikit-learn) on the embeddings, trained on the clusters with the corrections applied
(corrected images weigh 10 mean confidences, the others their confidence; ``C=30``), and label
spreading (scikit-learn's ``LabelSpreading``) over the mined neighbour graph, with the corrected images
and each cluster's more confident half as labelled points.

    python -m bench.corrections --datasets digits,mnist5k --seeds 3 [--compare]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: ACC is reported after this many corrections (the user corrects 10 at a time).
REPORTED = (10, 20, 30, 50)
BATCH = 10


def start_of(name: str, out: Path, cache_dir: Path) -> dict:
    """The default run's clustering of a set, kept as ``<out>/<name>-start.npz``."""
    kept = out / f"{name}-start.npz"
    if kept.is_file():
        with np.load(kept) as z:
            return {key: z[key] for key in z.files}
    from bench.clustering import features_of
    from semclust.core.clustering.methods import Inputs, auto_candidates, cluster_candidates
    from semclust.core.neighbours import mine_neighbours

    data = features_of(name, Path("bench/out/clustering/runs"), cache_dir)
    emb = np.asarray(data["embeddings"], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    feats = np.asarray(data["features"], dtype=np.float32)
    k = len(np.unique(data["labels"]))
    neighbours = mine_neighbours(emb, 20)
    chosen = cluster_candidates(Inputs(feats, emb, neighbours, 0), k, 0, auto_candidates(len(emb)))
    found = {"embeddings": emb, "neighbours": neighbours, "labels": np.asarray(data["labels"]),
             "probabilities": chosen.best.probabilities,
             "method": np.asarray(chosen.chosen)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    np.savez(kept, **found)
    return found


def pick(labels: np.ndarray, shown: np.ndarray, done: dict, count: int, rng) -> dict[int, int]:
    """What the simulated user moves next: ``count`` wrongly clustered images at random, each to the
    cluster where its label is the majority."""
    clusters = int(shown.max()) + 1
    classes, codes = np.unique(labels, return_inverse=True)
    table = np.zeros((clusters, len(classes)), dtype=np.int64)
    np.add.at(table, (shown, codes), 1)
    majority = table.argmax(axis=1)
    home = {}
    for c in range(len(classes)):
        owners = np.flatnonzero((majority == c) & (table.sum(axis=1) > 0))
        if len(owners):
            home[c] = int(owners[table[owners, c].argmax()])
    wrong = [i for i in np.flatnonzero(majority[shown] != codes)
             if int(codes[i]) in home and int(i) not in done]  # fmt: skip
    chosen = rng.choice(wrong, min(count, len(wrong)), replace=False) if wrong else []
    return {int(i): home[int(codes[i])] for i in chosen}


def simulate(start: dict, seed: int, retrain: Callable | None) -> tuple[dict[int, float], float]:
    """ACC after each round of corrections (0: the run's), moved alone or with ``retrain``, and the
    mean seconds of a retrain."""
    from semclust.core.metrics import evaluate

    labels, probs = start["labels"], start["probabilities"]
    k = probs.shape[1]
    rng = np.random.default_rng(seed)
    moves: dict[int, int] = {}
    model = probs
    shown = probs.argmax(axis=1)
    accs = {0: evaluate(labels, shown, k)["acc"]}
    spent = []
    for total in range(BATCH, max(REPORTED) + 1, BATCH):
        moves.update(pick(labels, shown, moves, BATCH, rng))
        if retrain is not None and moves:  # none yet: no image the simulated user would move
            t0 = time.perf_counter()
            model = retrain(start, moves, shown)
            spent.append(time.perf_counter() - t0)
        shown = model.argmax(axis=1)
        shown[list(moves)] = list(moves.values())
        accs[total] = evaluate(labels, shown, k)["acc"]
    return accs, float(np.mean(spent)) if spent else 0.0


def vote(start: dict, moves: dict, shown: np.ndarray) -> np.ndarray:
    """What the app does (the kept option)."""
    from semclust.core.clustering.refine import refine

    return refine(start["neighbours"], start["probabilities"], moves, shown=shown).probabilities


def logistic(start: dict, moves: dict, shown: np.ndarray) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    probs = start["probabilities"]
    y, weight = probs.argmax(axis=1), probs.max(axis=1).astype(np.float64)
    y[list(moves)] = list(moves.values())
    weight[list(moves)] = 10 * weight.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=30, max_iter=100).fit(start["embeddings"], y, weight)
    out = np.zeros_like(probs)
    out[:, model.classes_] = model.predict_proba(start["embeddings"])
    return out


def _graph(neighbours: np.ndarray):
    from scipy import sparse

    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    w = sparse.csr_matrix((np.ones(n * k), (rows, neighbours.ravel())), shape=(n, n))
    return ((w + w.T) > 0).astype(np.float64)


def spreading(start: dict, moves: dict, shown: np.ndarray) -> np.ndarray:
    from sklearn.semi_supervised import LabelSpreading

    probs = start["probabilities"]
    y, conf = probs.argmax(axis=1), probs.max(axis=1)
    labelled = np.full(len(y), -1)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        sure = members[conf[members] >= np.median(conf[members])]
        labelled[sure] = c
    labelled[list(moves)] = list(moves.values())
    graph = _graph(start["neighbours"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LabelSpreading(kernel=lambda a, b: graph, alpha=0.2, max_iter=100)
        model.fit(start["embeddings"], labelled)
    out = np.zeros_like(probs)
    out[:, model.classes_] = model.label_distributions_
    return out


OPTIONS = {"vote": vote, "logistic": logistic, "spreading": spreading}
NAMES = {"vote": "neighbour vote, kept", "logistic": "logistic regression",
         "spreading": "label spreading"}  # fmt: skip


def report(rows: list[dict]) -> str:
    """The Markdown table: mean ACC (and its range over the seeds) per set and option."""
    lines = [
        "| set (images, start ACC) | corrections | " + " | ".join(str(n) for n in REPORTED) + " |",
        "|---|---|" + "---:|" * len(REPORTED),
    ]
    for name in dict.fromkeys(r["set"] for r in rows):
        of_set = [r for r in rows if r["set"] == name]
        first = of_set[0]
        for option in dict.fromkeys(r["option"] for r in of_set):
            runs = [r for r in of_set if r["option"] == option]
            cells = []
            for n in REPORTED:
                accs = [r["acc"][str(n)] for r in runs]
                cells.append(f"{np.mean(accs):.3f} ({min(accs):.3f}-{max(accs):.3f})")
            what = (
                "moved alone" if option == "moves" else f"moved, then retrained ({NAMES[option]})"
            )
            secs = f", {np.mean([r['seconds_per_retrain'] for r in runs]):.2f} s a retrain"
            lines.append(
                f"| {name} ({first['n']:,}, {first['acc']['0']:.3f} {first['method']}) | {what}"
                f"{secs if option != 'moves' else ''} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.corrections", description=__doc__)
    p.add_argument("--datasets", default="digits,mnist5k")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--compare", action="store_true", help="also a classifier and label spreading")
    p.add_argument("--out", type=Path, default=Path("bench/out/corrections"))
    p.add_argument("--cache-dir", type=Path, default=Path("bench/out/data"))
    p.add_argument("--report", action="store_true", help="print the table of <out>/rows.jsonl")
    args = p.parse_args(argv)
    log = args.out / "rows.jsonl"
    if args.report:
        print(report([json.loads(line) for line in log.read_text().splitlines()]))
        return
    options = ["moves", "vote"] + (["logistic", "spreading"] if args.compare else [])
    rows = []
    for name in args.datasets.split(","):
        start = start_of(name, args.out, args.cache_dir)
        for option in options:
            for seed in range(args.seeds):
                accs, seconds = simulate(start, seed, OPTIONS.get(option))
                row = {"set": name, "n": len(start["labels"]), "method": str(start["method"]),
                       "option": option, "seed": seed, "acc": {str(n): a for n, a in accs.items()},
                       "seconds_per_retrain": seconds}  # fmt: skip
                rows.append(row)
                args.out.mkdir(parents=True, exist_ok=True)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{name} {option} seed {seed}: "
                      + " ".join(f"{n}:{a:.4f}" for n, a in accs.items()), flush=True)  # fmt: skip
    print(report(rows))


if __name__ == "__main__":
    main()
