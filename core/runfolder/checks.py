"""Checks of a run folder's files as a run is loaded: each reads what one file holds and raises a
:class:`~semclust.core.runfolder.artefacts.RunFolderError` that names the file when it is damaged,
does not match the run or is unsafe (a run folder may come from elsewhere). Suggested names are the
exception: a damaged ``names.json`` is set aside with a note (:func:`read_suggested_names`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from semclust.core.config import RunConfig
from semclust.core.naming.names import names_from_json
from semclust.core.runfolder.artefacts import RunFolderError, read_json
from semclust.core.runfolder.corrections import Corrections

log = logging.getLogger(__name__)


def parsed(from_dict, data: object, where: Path):
    """``from_dict`` of the JSON object ``data`` read from ``where``; what it refuses is damage."""
    try:
        return from_dict(json_object(data, where))
    except RunFolderError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise RunFolderError(f"{where} is damaged: {exc}") from None


def valid_config(data: dict) -> RunConfig:
    """The run's configuration from ``config.json``'s content, validated."""
    config = RunConfig.from_dict(data)
    config.validate()
    return config


def json_object(value: object, where: Path) -> dict:
    """``value`` when it is a JSON object (``{}`` for an absent file)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RunFolderError(f"{where} is damaged: expected a JSON object.")
    return value


def rows_of(array: np.ndarray | None, n: int, where: Path, ndim: int) -> np.ndarray | None:
    """``array`` when it has ``ndim`` dimensions and one row per image (or is absent)."""
    if array is not None and (array.ndim != ndim or len(array) != n):
        raise RunFolderError(
            f"{where} does not match the run: {array.shape} for {n} images in images.json."
        )
    return array


def check_indices(array: np.ndarray, n: int, where: Path, what: str) -> None:
    """Every value of ``array`` indexes one of ``n`` things (``what``: "image")."""
    if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= n):
        raise RunFolderError(f"{where} is damaged: it points at {what}s that do not exist.")


def read_prototypes(data: object, n: int, k: int, where: Path) -> dict[int, list[int]]:
    """``prototypes.json``'s content: cluster -> image indices, each in range."""
    try:
        prototypes = {int(c): [int(i) for i in v] for c, v in json_object(data, where).items()}
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        raise RunFolderError(f"{where} is damaged: not cluster -> image indices.") from None
    for c, members in prototypes.items():
        if not all(0 <= i < n for i in members):  # Python's ints: no overflow converting them
            raise RunFolderError(f"{where} is damaged: it points at images that do not exist.")
        if not 0 <= c < k:
            raise RunFolderError(f"{where} is damaged: it names cluster {c} of {k}.")
    return prototypes


def read_k_choice(data: object, where: Path) -> dict | None:
    """``choose_k.json``'s content, its curves matching the ks tried (advisory fields mended)."""
    if data is None:
        return None
    data = json_object(data, where)
    try:
        ks, score, best = (
            [int(k) for k in data["ks"]],
            [float(v) for v in data["score"]],
            int(data["best"]),
        )
        curves = {str(n): [float(v) for v in c] for n, c in data.get("curves", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):  # "curves": null
        raise RunFolderError(f"{where} is damaged: not a choice of k.") from None
    if len(score) != len(ks) or best not in ks or any(len(c) != len(ks) for c in curves.values()):
        raise RunFolderError(f"{where} is damaged: its curves do not match the k tried.")
    extra = data.get("extra")
    extra = dict(extra) if isinstance(extra, dict) else {}
    near = extra.get("near_best")  # advisory: dropped when it is not a list of ks tried
    valid = isinstance(near, list) and all(type(k) is int and k in ks for k in near)
    extra["near_best"] = near if valid else []
    seconds = data.get("seconds")  # advisory too: 0 when it is not a number
    seconds = float(seconds) if type(seconds) in (int, float) and math.isfinite(seconds) else 0.0
    return {
        **data, "ks": ks, "score": score, "best": best, "curves": curves, "extra": extra,
        "seconds": seconds,
    }  # fmt: skip


def read_suggested_names(where: Path, k: int) -> dict:
    """``RunData``'s suggested names and their confidences from ``names.json`` (either format).

    Names are suggestions: a damaged file is ignored, said in ``names_problem`` and logged, and the
    run still opens.
    """
    try:
        names = names_from_json(read_json(where, {}), k)
    except (RunFolderError, ValueError) as exc:
        problem = str(exc) if isinstance(exc, RunFolderError) else f"{where} is damaged: {exc}"
        problem = f"{problem.rstrip('.')}; the suggested cluster names are ignored."
        log.warning("%s", problem)
        return {"names_problem": problem}
    return {
        "suggested_names": {c: s.name for c, s in names.items()},
        "suggested_confidence": {
            c: s.confidence for c, s in names.items() if s.confidence is not None
        },
    }


def check_corrections(corrections: Corrections, n: int, k: int, where: Path) -> None:
    """The corrections name only clusters and images the run has (the clusters made included)."""
    if not 0 <= corrections.added <= n:
        raise RunFolderError(
            f"{where} is damaged: it adds {corrections.added} clusters to a run of {n} images."
        )
    k += corrections.added
    named = [*corrections.names, *corrections.suggested, *(c for p in corrections.apart for c in p)]
    bad_cluster = [c for c in [*named, *corrections.moves.values()] if not 0 <= c < k]
    bad_image = [i for i in corrections.moves if not 0 <= i < n]
    if bad_cluster or bad_image:
        raise RunFolderError(
            f"{where} does not match the run: it names clusters or images that do not exist."
        )
