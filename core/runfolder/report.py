"""A finished run as one HTML page to share: a model card that opens in any browser, offline.

What was clustered and how (the image folder, the settings of ``config.json``, the seconds of each
stage), the clusters (name, size, confidence; majority label and purity when the run knows true
labels, and the overall ACC/NMI/ARI), each cluster's most confident images as small embedded
thumbnails, the 2-d map and, when the run chose its k, the curve of that choice.

The page holds everything it shows (CSS inline, images as ``data:`` URIs, pictures as inline SVG),
loads nothing and runs no script (its Content-Security-Policy forbids both). Everything the user or
the folder supplied (names, paths, labels) is escaped. The clusters are those of now: with the
corrections made in the app.

Example:
    >>> from semclust.core.runfolder.report import write_report
    >>> from semclust.core.runfolder.results import load_run
    >>> write_report(load_run("runs/digits"))  # doctest: +SKIP
    PosixPath('runs/digits/report.html')
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import numpy as np

from semclust import __version__
from semclust.core.metrics import close_said, cluster_summary, evaluate
from semclust.core.progress import STAGES
from semclust.core.runfolder.artefacts import (
    RENAMED_STAGES,
    RunFolderError,
    StageRecord,
    is_inside,
    read_json,
    write_text,
)
from semclust.core.runfolder.image_list import read_skipped
from semclust.core.runfolder.report_pictures import (
    cluster_colours,
    k_curve_svg,
    map_svg,
    thumbnail,
)
from semclust.core.runfolder.results import RunData

#: Images shown per cluster unless asked otherwise, and the most that can be asked.
PER_CLUSTER = 8
MAX_PER_CLUSTER = 100

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:50%;vertical-align:middle}
.grid img{width:64px;height:64px;margin:1px;border:1px solid #eee}
.cluster h3{margin:.8em 0 .2em;font-size:1em}.note{color:#666}
"""


def default_report_path(run: RunData) -> Path:
    """Where a report goes unless told: ``RUN/report.html``."""
    return run.paths.root / "report.html"


def check_report_path(run: RunData, path: str | Path) -> Path:
    """The report's path, refused when it lies in the image folder (it could replace a user's file
    there: the images are never written to) or names a folder.

    Raises:
        ValueError: with the reason; nothing is written.
    """
    path = Path(path).expanduser()
    if is_inside(path.absolute().parent, run.image_root) or is_inside(path, run.image_root):
        raise ValueError(
            f"Choose a report file outside the image folder {run.image_root}: it is never written to."
        )
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder; choose a file name for the report (say report.html)."
        )
    return path


def write_report(
    run: RunData, path: str | Path | None = None, per_cluster: int = PER_CLUSTER
) -> Path:
    """Writes the report of ``run`` (atomically) and returns its path.

    Args:
        run: a finished run (with the corrections to show).
        path: the HTML file to write; default :func:`default_report_path`.
        per_cluster: images shown per cluster (0 to :data:`MAX_PER_CLUSTER`).

    Raises:
        ValueError: the path lies in the image folder or is a folder, or ``per_cluster`` is out of
            range; nothing is written.
    """
    path = check_report_path(run, default_report_path(run) if path is None else path)
    text = report_html(run, per_cluster)
    write_text(path, text)
    return path


def report_html(run: RunData, per_cluster: int = PER_CLUSTER) -> str:
    """The report of ``run`` as the text of one HTML page (see the module's docstring).

    Raises:
        ValueError: ``per_cluster`` is out of range, or the run is a preview (not finished).
    """
    if not 0 <= int(per_cluster) <= MAX_PER_CLUSTER:
        raise ValueError(f"Show 0 to {MAX_PER_CLUSTER} images per cluster, not {per_cluster}.")
    if run.preview:
        raise ValueError("The run has not finished: a report shows a finished run only.")
    assignment = run.assignment
    k = run.n_clusters
    has_labels = run.true_labels is not None and any(t is not None for t in run.true_labels)
    labels = run.true_labels if has_labels else None
    stats = cluster_summary(assignment, k, labels, run.model_confidence)
    title = f"semclust report: {run.image_root.name or run.image_root}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by semclust '
        f"{escape(__version__)} from the run folder <code>{escape(str(run.paths.root))}</code>.</p>",
        _what(run),
        _settings(run),
        _seconds(run),
        _results(run, assignment, has_labels),
        _cluster_table(run, stats, has_labels),
        _pictures(run, assignment),
        _gallery(run, assignment, stats, int(per_cluster)),
    ]
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f'<meta name="generator" content="semclust {escape(__version__)}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


# -- sections --------------------------------------------------------------------------------------
def _what(run: RunData) -> str:
    try:
        skipped = read_skipped(run.paths)
    except RunFolderError as exc:
        skipped, problem = [], f" ({exc})"
    else:
        problem = ""
    c = run.corrections
    edits = []
    if c.names:
        edits.append(f"{len(c.names)} cluster{_s(len(c.names))} renamed")
    if c.moves:
        edits.append(f"{len(c.moves):,} image{_s(len(c.moves))} moved by hand")
    if c.added:
        edits.append(f"{c.added} cluster{_s(c.added)} made in the app")
    rows = [
        ("image folder", f"<code>{escape(str(run.image_root))}</code>"),
        ("images clustered", f"{len(run.image_paths):,}"),
        ("files skipped", f"{len(skipped):,}{escape(problem)}" + _skipped_list(skipped)),
        (
            "true labels",
            "known (class-named subfolders or a labels CSV)"
            if run.true_labels is not None
            else "unknown",
        ),
        ("corrections", escape(", ".join(edits)) if edits else "none"),
    ]
    return "<h2>What was clustered</h2>" + _key_values(rows)


def _skipped_list(skipped: list[tuple[str, str]], most: int = 50) -> str:
    if not skipped:
        return ""
    items = "".join(
        f"<li><code>{escape(p)}</code>: {escape(r)}</li>" for p, r in skipped[:most]
    ) + (
        f"<li>… and {len(skipped) - most:,} more (see skipped.csv)</li>"
        if len(skipped) > most
        else ""
    )
    return f"<details><summary>which, and why</summary><ul>{items}</ul></details>"


def _settings(run: RunData) -> str:
    cfg = run.config
    metrics = run.metrics
    kept = metrics.get("method_kept") or _kept_method(run) or cfg.method
    close = run.close_alternative
    clusters = f"{run.predicted_clusters}"
    if cfg.auto_clusters is not None:
        low, high = cfg.auto_clusters
        how = "picked by the user" if cfg.picked_clusters is not None else "chosen without labels"
        clusters += f" ({how} among {low}-{high})"
    if run.corrections.added:
        clusters += f", and {run.corrections.added} made in the app"
    meta = (read_json(run.paths.config, {}) or {}).get("_meta") or {}
    meta = meta if isinstance(meta, dict) else {}
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    frozen = " (a frozen backbone)" if cfg.pretext.epochs == 0 else ""
    rows = [
        ("backbone", escape(cfg.encoder.backbone)),
        ("weights", escape(str(cfg.encoder.weights or "none (learnt from scratch)"))),
        ("feature layer", escape(cfg.encoder.layer)),
        ("input size", f"{cfg.ingest.image_size} px"),
        ("pretext (SimCLR) epochs", f"{cfg.pretext.epochs}" + frozen),
        ("clustering method asked", escape(cfg.method)),
        ("clustering method kept", escape(str(kept))),
        *([("scored nearly as well", escape(close_said(*close)))] if close else []),
        ("number of clusters", escape(clusters)),
        ("self-labelling", "on" if cfg.selflabel.enabled else "off"),
        ("seed", str(cfg.seed)),
        ("run made", escape(str(meta.get("created", "unknown")))),
        (
            "libraries of the run",
            escape(", ".join(f"{k} {v}" for k, v in versions.items() if v)) or "unknown",
        ),
        ("report made by", f"semclust {escape(__version__)}"),
    ]
    return "<h2>How</h2>" + _key_values(rows)


def _kept_method(run: RunData) -> str | None:
    try:
        summary = read_json(run.paths.clustering_summary, {}) or {}
    except RunFolderError:
        return None
    if not isinstance(summary, dict):
        return None
    selection = summary.get("selection")
    chosen = selection.get("chosen") if isinstance(selection, dict) else None
    return chosen or summary.get("method")


def stage_seconds(run: RunData) -> dict[str, float]:
    """Seconds of each stage the run records (``stages.json``, else ``metrics.json``), in the
    pipeline's order."""
    found: dict[str, float] = {}
    recorded = run.metrics.get("stage_seconds")
    for stage, v in (recorded if isinstance(recorded, dict) else {}).items():
        if _number(v):  # an older run's names read as now's (``scan`` is ``clustering``)
            found[RENAMED_STAGES.get(str(stage), str(stage))] = float(v)
    for stage, entry in StageRecord(run.paths).data.items():  # a damaged record reads as empty
        if _number(entry.get("seconds")):
            found[stage] = float(entry["seconds"])
    order = {s: i for i, s in enumerate(STAGES)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _seconds(run: RunData) -> str:
    seconds = stage_seconds(run)
    if not seconds:
        return "<h2>Time</h2><p>This run folder records no times.</p>"
    rows = [(escape(s), f"{v:,.1f} s") for s, v in seconds.items()]
    rows.append(("<b>total</b>", f"<b>{sum(seconds.values()):,.1f} s</b>"))
    return (
        "<h2>Time per stage</h2>"
        + _key_values(rows, numbers=True)
        + '<p class="note">As recorded when each stage last ran: a run continued or redone with '
        "other settings kept the stages it could skip.</p>"
    )


def _results(run: RunData, assignment: np.ndarray, has_labels: bool) -> str:
    used = len(np.unique(assignment))
    text = f"<p>{len(assignment):,} images in {run.n_clusters} clusters ({used} used).</p>"
    if not has_labels:
        return (
            "<h2>Results</h2>"
            + text
            + ('<p class="note">The run knows no true labels: no accuracy to report.</p>')
        )
    now = evaluate(run.true_labels, assignment, run.n_clusters)
    names = (("acc", "ACC (Hungarian)"), ("nmi", "NMI"), ("ari", "ARI"),
             ("many_to_one_acc", "many-to-one accuracy"))  # fmt: skip
    corrected = bool(run.corrections.moves or run.corrections.added)
    head = (
        "<tr><th></th><th>clusters shown</th>" + ("<th>model</th>" if corrected else "") + "</tr>"
    )
    rows = []
    for key, label in names:
        model = run.metrics.get(key)
        cells = f'<td class="n">{now[key]:.3f}</td>'
        if corrected:
            cells += f'<td class="n">{model:.3f}</td>' if _number(model) else "<td>–</td>"
        rows.append(f"<tr><th>{label}</th>{cells}</tr>")
    if _number(run.metrics.get("neighbour_purity")):
        rows.append(f'<tr><th>neighbour purity</th><td class="n">{run.metrics["neighbour_purity"]:.3f}'
                    "</td>" + ("<td></td>" if corrected else "") + "</tr>")  # fmt: skip
    note = (
        '<p class="note">"clusters shown" includes the corrections made in the app; "model" is the '
        "run's own clustering.</p>"
        if corrected
        else ""
    )
    return (
        f"<h2>Results</h2>{text}<p>Against the {now['n_labelled']:,} known labels "
        f"({len(now['class_names'])} classes):</p>"
        f'<table class="metrics">{head}{"".join(rows)}</table>{note}'
    )


def _cluster_table(run: RunData, stats: list, has_labels: bool) -> str:
    colours = cluster_colours(run.n_clusters)
    head = ["", "cluster", "name", "name confidence", "size", "mean confidence"]
    if has_labels:
        head += ["majority label", "purity"]
    rows = []
    for st in stats:
        c = st.cluster
        confidence = run.name_confidence(c)
        if c in run.corrections.names:
            named = "yours"
        elif confidence is not None:
            named = f"{confidence:.0%} (suggested)"
        else:
            named = "suggested" if run.suggested_names.get(c) else "–"
        cells = [
            f'<td><span class="swatch" style="background:{colours[c]}"></span></td>',
            f'<td class="n">{c}</td>',
            f'<td><a href="#cluster-{c}">{escape(run.cluster_name(c))}</a></td>',
            f"<td>{named}</td>",
            f'<td class="n size">{st.size:,}</td>',
            f'<td class="n">{_fraction(st.mean_confidence)}</td>',
        ]
        if has_labels:
            cells += [
                f"<td>{escape(st.majority_label) if st.majority_label is not None else '–'}</td>",
                f'<td class="n">{_fraction(st.purity)}</td>',
            ]
        rows.append(f'<tr class="cluster-row" data-cluster="{c}">{"".join(cells)}</tr>')
    note = f'<p class="note">{escape(run.naming_note)}</p>' if run.naming_note else ""
    if look := run.look_alike():
        note += f'<p class="note" id="look-alike">{escape(look.describe())}</p>'
    return (
        "<h2>Clusters</h2>" + note + '<table id="clusters"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + ('<p class="note">Purity: the share of the cluster\'s labelled images that carry its '
           "majority label.</p>" if has_labels else "")
    )  # fmt: skip


def _pictures(run: RunData, assignment: np.ndarray) -> str:
    parts = []
    if run.umap is not None and len(run.umap):
        svg, drawn = map_svg(run.umap, assignment, run.n_clusters)
        sample = "" if drawn == len(assignment) else f" ({drawn:,} of {len(assignment):,} images)"
        parts.append(
            f"<h2>Map</h2><figure>{svg}<figcaption>Each image's place in the 2-d map (UMAP of the "
            f"embeddings), coloured by cluster as in the table{sample}.</figcaption></figure>"
        )
    choice = run.k_choice
    if choice:
        in_use = run.predicted_clusters
        svg = k_curve_svg(
            choice["ks"], choice["score"], choice.get("curves", {}), choice["best"], in_use
        )
        parts.append(
            "<h2>Choosing the number of clusters</h2><figure>"
            f"{svg}<figcaption>The label-free criteria over every k tried, each rescaled to 0..1 "
            f"(0: worst k tried, 1: best); k = {choice['best']} was chosen"
            + (f", k = {in_use} is in use" if in_use != choice["best"] else "")
            + ".</figcaption></figure>"
        )
    return "\n".join(parts)


def _gallery(run: RunData, assignment: np.ndarray, stats: list, per_cluster: int) -> str:
    if per_cluster == 0:
        return ""
    shown = {st.cluster: run.examples(st.cluster, per_cluster, assignment)[0] for st in stats}
    every = sorted({i for members in shown.values() for i in members})
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        thumbs = dict(zip(every, pool.map(lambda i: thumbnail(run, i), every)))
    sections = []
    for st in stats:
        c = st.cluster
        imgs = []
        for i in shown[c]:
            uri, problem = thumbs[i]
            tip = run.image_paths[i] + (f" ({problem})" if problem else "")
            imgs.append(f'<img src="{uri}" alt="{escape(tip)}" title="{escape(tip)}">')
        body = "".join(imgs) or '<span class="note">empty</span>'
        sections.append(
            f'<section class="cluster" id="cluster-{c}"><h3>{c} · {escape(run.cluster_name(c))} '
            f'<span class="note">({st.size:,} images)</span></h3><div class="grid">{body}</div></section>'
        )
    return (
        f'<h2>Images</h2><p class="note">Each cluster\'s {per_cluster} most confident images '
        "(the run's prototypes first; for a cluster you made, the images nearest its centre); a "
        "grey square stands for an image that cannot be read.</p>" + "\n".join(sections)
    )


# -- small helpers ---------------------------------------------------------------------------------
def _key_values(rows: list[tuple[str, str]], numbers: bool = False) -> str:
    """A two-column table; the cells are HTML already (escaped by the caller)."""
    cls = ' class="n"' if numbers else ""
    return (
        "<table>" + "".join(f"<tr><th>{k}</th><td{cls}>{v}</td></tr>" for k, v in rows) + "</table>"
    )


def _fraction(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _s(n: int) -> str:
    return "s" * (n != 1)
