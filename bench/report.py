"""Writes ``BENCHMARKS.md`` (markdown tables) and PNG plots from the benchmark results."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> str:
    """A GitHub markdown table; ``align`` is one character per column (``l``/``r``), default all left.

    Example:
        >>> print(markdown_table(["a", "b"], [[1, 2]]))
        | a | b |
        |---|---|
        | 1 | 2 |
    """
    align = align or "l" * len(headers)
    sep = ["---:" if a == "r" else "---" for a in align]

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    info = {
        "CPU": cpu,
        "cores": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "RAM": ram,
        "OS": platform.platform(),
        "python": platform.python_version(),
    }
    for mod in ("keras", "tensorflow", "numpy", "sklearn", "umap"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - report what is there
            info[mod] = "not installed"
    return info


def where_it_runs() -> str:
    """One line naming the Keras backend and what it computes on, e.g. ``jax on NVIDIA H100 80GB HBM3``.

    Quality runs record it, so that a report merged from runs on different machines says which row
    came from where (their seconds are not comparable across machines; their scores are).
    """
    import keras

    backend = keras.backend.backend()
    device = None
    try:
        if backend == "jax":
            import jax

            first = jax.devices()[0]
            device = first.device_kind if first.platform != "cpu" else None
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            device = (
                tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
                if gpus
                else None
            )
    except Exception:  # noqa: BLE001 - a missing or broken accelerator reads as the CPU
        device = None
    if device is None:
        info = machine_info()
        device = f"{info['CPU']}, {info['cores']} cores"
    return f"{backend} on {device}"


def _pm(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _stages(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if v is not None)


def quality_section(quality: dict) -> str:
    """Tables of the quality benchmark: one per dataset, then the targets."""
    from bench.quality import METHODS, check_targets, summarise

    rows = summarise(quality["records"])
    out = ["## Clustering quality\n"]
    said: set[str] = set()
    for run in quality.get("runs") or [quality]:
        scope = ", ".join(run.get("datasets", []))
        if run.get("methods") and set(run["methods"]) != set(METHODS):
            scope += ": " + ", ".join(run["methods"])
        out.append(
            f"Command: `{run.get('command', '?')}` ({run.get('date', '?')}"
            + (f", {run['machine']}" if run.get("machine") else "")
            + ")"
            + (f", for {scope}" if scope else "")
            + "\n"
        )
        notes = [n for n in run.get("notes", []) if n not in said]  # a note shared by runs: once
        said.update(notes)
        if notes:
            out.append("\n".join(f"- {n}" for n in notes) + "\n")
    machine_of_run = {run.get("date"): run.get("machine") for run in quality.get("runs") or []}
    machines: dict[tuple[str, str], str] = {}
    for rec in quality["records"]:
        where = machine_of_run.get(rec.get("run"))
        if where:
            machines[(rec["dataset"], rec["method"])] = where
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        # Rows from different machines: say which is which, since their seconds do not compare.
        mixed = (
            len({machines.get((dataset, r["method"])) for r in rows if r["dataset"] == dataset}) > 1
        )
        table = [
            [
                r["method"] + (f" ({machines.get((dataset, r['method']), '?')})" if mixed else ""),
                r["seeds"],
                _pm(r["acc"], r["acc_std"]),
                _pm(r["nmi"], r["nmi_std"]),
                _pm(r["ari"], r["ari_std"]),
                f"{r['clusters_used']:.1f}",
                f"{r['total_seconds']:.1f}",
                _stages(r["seconds"]),
            ]
            for r in rows
            if r["dataset"] == dataset
        ]
        out.append(f"### {dataset}\n")
        out.append(
            markdown_table(
                [
                    "method",
                    "seeds",
                    "ACC",
                    "NMI",
                    "ARI",
                    "clusters used",
                    "total s",
                    "seconds per stage",
                ],
                table,
                "lrrrrrrl",
            )
            + "\n"
        )
    configs = {}
    for r in quality["records"]:
        if r.get("config"):
            configs.setdefault(r["method"], r["config"])
    if configs:
        out.append("Settings of our runs (and of DEC):\n")
        out.append(
            "\n".join(
                f"- {m}: " + ", ".join(f"{k}={v}" for k, v in c.items()) for m, c in configs.items()
            )
            + "\n"
        )
    recipe = [r for r in quality["records"] if r["method"] == "kerasio-recipe"]
    if recipe:
        out.append("keras.io recipe budgets (representation s, clustering s) and epochs reached:\n")
        out.append(
            markdown_table(
                ["dataset", "seed", "budget from", "budget s", "epochs done", "seconds used"],
                [
                    [
                        r["dataset"],
                        r["seed"],
                        r.get("budget_from"),
                        r.get("budget_seconds"),
                        r.get("epochs"),
                        _stages(r["seconds"]),
                    ]
                    for r in recipe
                ],
            )
            + "\n"
        )
    dec = [r for r in quality["records"] if r.get("dec")]
    if dec:
        out.append(
            "Deep Embedded Clustering (mobilenet+dec): clustering iterations run and the fraction of "
            "assignments that changed at the last target refresh (it stops below the tolerance):\n"
        )
        out.append(
            markdown_table(
                ["dataset", "seed", "iterations", "changed", "seconds used"],
                [
                    [
                        r["dataset"],
                        r["seed"],
                        r["dec"]["iterations"],
                        f"{100 * r['dec']['changed']:.2f}%",
                        _stages(r["seconds"]),
                    ]
                    for r in dec
                ],
                "lrrrl",
            )
            + "\n"
        )
    checks = check_targets(rows)
    out.append("### Targets\n")
    out.append(
        markdown_table(
            ["target", "dataset", "result", "detail"],
            [[c["target"], c["dataset"], c["status"], c["detail"]] for c in checks],
        )
        + "\n"
    )
    return "\n".join(out)


def speed_section(speed: dict) -> str:
    """Tables of the speed benchmark."""
    r = speed["results"]
    out = ["## Speed and memory\n"]
    runs = speed.get("part_runs") or {part: speed for part in r}
    by_command: dict[tuple[str, str], list[str]] = {}
    for part, run in runs.items():
        by_command.setdefault((run.get("command", "?"), run.get("date", "?")), []).append(part)
    for (command, date), parts in by_command.items():
        out.append(f"Command: `{command}` ({date}), for {', '.join(parts)}\n")

    if speed.get("notes"):
        out.append("\n".join(f"- {n}" for n in speed["notes"]) + "\n")

    def num(v: Any, fmt: str = ".1f") -> str:
        return "n/a" if v is None else format(v, fmt)

    out.append("### Representation training throughput (steady state, two views per image)\n")
    out.append(
        markdown_table(
            ["encoder", "batch", "images/s", "s per batch", "parameters", "peak RSS MiB", "note"],
            [
                [
                    t["encoder"],
                    t["batch"],
                    num(t.get("images_per_second")),
                    num(t.get("seconds_per_batch"), ".2f"),
                    f"{t.get('params', 0):,}",
                    num(t.get("peak_rss_mb"), ".0f"),
                    t.get("error") or "",
                ]
                for t in r["throughput"]
            ],
            "lrrrrrl",
        )
        + "\n"
    )
    out.append(
        "### Neighbour mining (top-20 cosine; exact below the threshold, faiss HNSW above; "
        "recall against exact search on 1,000 rows)\n"
    )
    out.append(
        markdown_table(
            [
                "N",
                "dim",
                "data",
                "seconds",
                "CPU s",
                "recall",
                "RSS growth MiB",
                "peak RSS MiB",
                "input MiB",
                "implementation",
            ],
            [
                [
                    f"{n['n']:,}",
                    speed.get("dim", 512),
                    n.get("data", "uniform"),
                    num(n.get("seconds"), ".2f"),
                    num(n.get("cpu_seconds"), ".1f"),
                    num(n.get("recall"), ".3f"),
                    num(n.get("rss_growth_mb"), ".0f"),
                    num(n.get("peak_rss_mb"), ".0f"),
                    num(n.get("input_mb"), ".0f"),
                    n.get("impl") or n.get("error"),
                ]
                for n in r["neighbours"]
            ],
            "rrlrrrrrrl",
        )
        + "\n"
    )
    out.append("### UMAP to 2-D (random unit vectors, seeded so single-threaded)\n")
    out.append(
        markdown_table(
            ["N", "nearest neighbours", "seconds", "JIT warm-up s", "RSS growth MiB", "note"],
            [
                [
                    f"{u['n']:,}",
                    u.get("knn", "UMAP's own search"),
                    num(u.get("seconds")),
                    num(u.get("warmup_seconds")),
                    num(u.get("rss_growth_mb"), ".0f"),
                    u.get("error") or "",
                ]
                for u in r["umap"]
            ],
            "rlrrrl",
        )
        + "\n"
    )
    ing = r.get("ingest")
    if ing:
        out.append("### Load and cache a folder (`core.images.ingest`)\n")
        out.append(
            markdown_table(
                ["folder", "files", "first run s", "second run s", "from cache", "note"],
                [
                    [
                        ing["dataset"],
                        ing.get("images", "n/a"),
                        num(ing.get("first"), ".2f"),
                        num(ing.get("second"), ".2f"),
                        ing.get("cached_second", "n/a"),
                        ing.get("error") or "files were just written: OS page cache warm",
                    ]
                ],
            )
            + "\n"
        )
    run = r.get("run")
    if run:
        out.append("### A whole run (`core.run.run_pipeline`, from scratch, short epochs)\n")
        out.append(
            markdown_table(
                ["folder", "settings", "wall s", "peak RSS MiB", "seconds per stage", "note"],
                [
                    [
                        run["dataset"],
                        ", ".join(f"{k}={v}" for k, v in run.get("overrides", {}).items()),
                        num(run.get("seconds")),
                        num(run.get("peak_rss_mb"), ".0f"),
                        _stages(run.get("stage_seconds") or {}),
                        run.get("error") or "",
                    ]
                ],
            )
            + "\n"
        )
    return "\n".join(out)


def write_report(
    path: Path,
    quality: dict | None,
    speed: dict | None,
    plots: Sequence[Path] = (),
    machine: dict[str, str] | None = None,
) -> str:
    """Writes the markdown report to ``path`` and returns its text."""
    machine = machine or machine_info()
    parts = [
        "# semclust benchmarks\n",
        f"Written {dt.datetime.now().isoformat(timespec='seconds')} by `python -m bench` (see `bench/`).\n",
        "## Machine\n",
        markdown_table(["", ""], [[k, v] for k, v in machine.items()]) + "\n",
    ]
    if quality:
        parts.append(quality_section(quality))
    if speed:
        parts.append(speed_section(speed))
    if plots:
        parts.append("## Plots\n")
        for p in plots:
            rel = os.path.relpath(p, path.parent)
            parts.append(f"![{Path(p).stem}]({rel})\n")
    text = "\n".join(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return text


def write_plots(plots_dir: Path, quality: dict | None, speed: dict | None) -> list[Path]:
    """ACC per method and dataset; throughput per encoder; neighbour and UMAP time against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.quality import summarise

    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if quality and quality.get("records"):
        rows = summarise(quality["records"])
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        methods = list(dict.fromkeys(r["method"] for r in rows))
        fig, ax = plt.subplots(figsize=(max(7, 1.8 * len(datasets) + 3), 4.6))
        width = 0.8 / max(1, len(methods))
        by = {(r["dataset"], r["method"]): r for r in rows}
        for i, m in enumerate(methods):
            xs, ys, es = [], [], []
            for j, d in enumerate(datasets):
                if (d, m) in by:
                    xs.append(j + (i - (len(methods) - 1) / 2) * width)
                    ys.append(by[(d, m)]["acc"])
                    es.append(by[(d, m)]["acc_std"])
            ax.bar(xs, ys, width, yerr=es, label=m, capsize=2)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_ylabel("ACC (Hungarian), mean ± sd over seeds")
        ax.set_ylim(0, 1)
        ax.legend(
            fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False
        )
        fig.tight_layout()
        p = plots_dir / "quality_acc.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    if speed:
        r = speed["results"]
        tp = [t for t in r["throughput"] if t.get("images_per_second")]
        if tp:
            fig, ax = plt.subplots(figsize=(7, 3.5))
            ax.barh([t["encoder"] for t in tp], [t["images_per_second"] for t in tp])
            ax.set_xlabel("training images/s (SimCLR step, two views)")
            fig.tight_layout()
            p = plots_dir / "speed_throughput.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
        timed = [x for x in r["umap"] if x.get("seconds") is not None]
        series = [
            (
                "neighbour mining (clustered)",
                [
                    x
                    for x in r["neighbours"]
                    if x.get("seconds") is not None and x.get("data", "clustered") == "clustered"
                ],
            ),
            ("UMAP, its own kNN search", [x for x in timed if not x.get("mined")]),
            ("UMAP on the mined neighbours", [x for x in timed if x.get("mined")]),
        ]
        if any(s for _, s in series):
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for name, s in series:
                if s:
                    ax.plot([x["n"] for x in s], [x["seconds"] for x in s], "o-", label=name)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("N embeddings (512-d)")
            ax.set_ylabel("seconds")
            ax.legend()
            ax.grid(True, which="both", alpha=0.3)
            fig.tight_layout()
            p = plots_dir / "speed_scaling.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
    return written
