"""``semclust``: the command line. ``run`` clusters a folder, ``export`` writes labels, ``demo`` runs the
whole pipeline on built-in handwritten digits, ``gui`` opens the desktop app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semclust.console import ConsoleProgress, silence_backend_noise
from semclust.core.choices import (
    AUTO,
    AUTO_RANGE,
    NO_WEIGHTS,
    RunChoices,
    build_config,
    with_default_representation,
)
from semclust.core.config import BACKBONES, METHODS, RunConfig
from semclust.core.representation.backbones import LAYERS

#: SimCLR epochs of ``semclust demo`` when it learns from scratch (``--weights none``, or no pretrained
#: weights here and none to fetch): measured ACC 0.86 on the 1,797 digits in about 3 minutes on 2 cores.
DEMO_PRETEXT_EPOCHS = 20


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    # Before anything imports TensorFlow: its start-up lines are hidden, real errors still shown.
    silence_backend_noise(import_backend=args.command in ("run", "demo"))
    return args.func(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semclust", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="cluster a folder of images")
    run.add_argument("folder", help="folder of images (searched recursively; never written to)")
    run.add_argument(
        "--out", required=True, help="run folder for every artefact (resumes if it exists)"
    )
    _add_run_options(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="run the whole pipeline on 1,797 real handwritten digits")
    demo.add_argument("--out", default=None, help="run folder (default: a cache folder)")
    _add_run_options(demo)
    demo.set_defaults(func=_cmd_demo)

    export = sub.add_parser("export", help="export labels (with corrections) of a finished run")
    export.add_argument("run", help="run folder")
    export.add_argument("--csv", help="where to write the labels CSV (default: RUN/labels.csv)")
    export.add_argument("--folders", help="also copy the images into one folder per cluster here")
    export.add_argument(
        "--image-root",
        help="where the images are now, if they moved since the run (say, a run made elsewhere)",
    )
    export.set_defaults(func=_cmd_export)

    gui = sub.add_parser("gui", help="open the desktop app")
    gui.add_argument("path", nargs="?", help="an image folder or a run folder")
    gui.set_defaults(func=_cmd_gui)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    p.add_argument(
        "--clusters",
        type=_clusters,
        default=d.clusters,
        help="number of clusters, or 'auto': chosen without labels (default %(default)s)",
    )
    p.add_argument(
        "--clusters-range",
        type=_range,
        default=AUTO_RANGE,
        metavar="LOW,HIGH",
        help="the numbers of clusters 'auto' tries (default 2,30)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=d.method,
        help=(
            "auto (default: SCAN and the quick alternatives, the best kept without labels), scan, or "
            "one alternative on the same features: kmeans, ward, umap_gmm, dec"
        ),
    )
    p.add_argument(
        "--backbone",
        default=None,
        help=(
            f"encoder network: {', '.join(BACKBONES)}, or a keras-hub preset id, hf:// id or local "
            "preset folder; a pretrained one starts from its pretrained weights. Default: a "
            "pretrained backbone whose weights are here, else efficientnet_lite2, fetched on first "
            f"use (about 22 MB), else {d.encoder.backbone} from scratch; mobilenet with --weights alone"
        ),
    )
    p.add_argument(
        "--weights",
        default=None,
        help="'pretrained' (or 'imagenet': downloaded once and cached; the default of a pretrained "
        f"backbone), a local weights file, or '{NO_WEIGHTS}': a random initialisation, trained "
        "from scratch",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="square input size (default 32 from scratch, else the backbone's own: 96 for mobilenet)",
    )
    p.add_argument(
        "--layer",
        choices=LAYERS,
        default=None,
        help="where frozen features are read: the last layer, or a mid-level one (pooled, "
        "square-rooted); auto (default): mid for small grey images (digits, silhouettes)",
    )
    p.add_argument(
        "--pretext-epochs",
        type=int,
        default=None,
        help=f"SimCLR epochs (default {d.pretext.epochs}; 0 with pretrained weights = frozen)",
    )
    p.add_argument("--scan-epochs", type=int, default=d.scan.epochs)
    p.add_argument("--selflabel-epochs", type=int, default=d.selflabel.epochs)
    p.add_argument(
        "--selflabel",
        action="store_true",
        help="add SCAN's self-labelling stage (off by default: no gain measured on a CPU budget)",
    )
    p.add_argument(
        "--update-encoder", action="store_true", help="fine-tune the encoder during SCAN (slower)"
    )
    p.add_argument(
        "--k", type=int, default=d.neighbours.k, help="neighbours per image (default %(default)s)"
    )
    p.add_argument("--entropy-weight", type=float, default=d.scan.entropy_weight)
    p.add_argument("--heads", type=int, default=d.scan.heads)
    p.add_argument(
        "--head-hidden",
        type=int,
        default=d.scan.hidden,
        help="width of a hidden layer shared by the clustering heads (default 0: linear heads)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--no-subfolder-labels",
        action="store_true",
        help="do not take class subfolder names as true labels",
    )
    p.add_argument("--labels-csv", default=None, help="CSV of path,label giving true labels")
    p.add_argument("--cache-dir", default=None, help="where decoded images are cached")
    p.add_argument("--quiet", action="store_true")


def _folder_look(folder: str) -> tuple[int | None, bool]:
    """The images' typical side and whether they are grey (from a sample of file headers)."""
    from semclust.core.images import InputError, survey_folder, typical_look

    try:
        return typical_look(survey_folder(folder))
    except InputError:
        return None, False  # the run says what is wrong with the folder


def _clusters(text: str) -> int | str:
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None


def _range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW,HIGH (say 2,30)") from None
    return low, high


def config_from_args(
    args: argparse.Namespace, default=None, image_side: int | None = None
) -> RunConfig:
    """The run configuration of ``run``/``demo``'s options, through the factory the GUI uses too.

    Args:
        args: the parsed options.
        default: the representation to use when the options name none (a
            :class:`~semclust.core.representation.backbones.Representation`); ``None``: from scratch.
        image_side: the typical shorter side of the images (sets a pretrained backbone's size).
    """
    choices = RunChoices(
        clusters=args.clusters,
        clusters_range=args.clusters_range,
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        layer=args.layer,
        pretext_epochs=args.pretext_epochs,
        method=args.method,
        scan_epochs=args.scan_epochs,
        heads=args.heads,
        head_hidden=args.head_hidden,
        entropy_weight=args.entropy_weight,
        k=args.k,
        update_encoder=args.update_encoder,
        selflabel=args.selflabel,
        selflabel_epochs=args.selflabel_epochs,
        seed=args.seed,
        subfolder_labels=not args.no_subfolder_labels,
        labels_csv=args.labels_csv,
    )
    if default is not None:
        choices = with_default_representation(choices, default)
    return build_config(choices, image_side=image_side)


def folder_config(args: argparse.Namespace):
    """``run``'s configuration for its folder, and the default representation it was built from
    (chosen for the folder's images: small grey ones prefer a backbone with a mid-level layer)."""
    from semclust.core.representation.backbones import default_representation, small_grey

    side, grey = _folder_look(args.folder)
    default = default_representation(args.cache_dir, small_grey(grey, side))
    return config_from_args(args, default, side), default


def run_config(argv: list[str]) -> RunConfig:
    """The configuration ``semclust run ARGV`` would use (benchmarks run exactly what users run)."""
    return folder_config(_parser().parse_args(["run", *argv]))[0]


def _cmd_run(args: argparse.Namespace) -> int:
    config, default = folder_config(args)
    _say_representation(config, default, args)
    return _run(args.folder, args.out, config, args)


def _say_representation(config: RunConfig, default, args: argparse.Namespace) -> None:
    if config.encoder.backbone == default.backbone and not args.quiet:
        print(f"Representation: {default.reason}")


def demo_config(args: argparse.Namespace):
    """``demo``'s configuration: the default of ``run`` for the digits (pretrained when weights are
    here or can be fetched), or :data:`DEMO_PRETEXT_EPOCHS` of SimCLR when it learns from scratch."""
    from semclust.core.demo import write_digits_folder

    args.folder = str(write_digits_folder())
    config, default = folder_config(args)
    if config.encoder.weights is None and args.pretext_epochs is None:
        config = config.replace(**{"pretext.epochs": DEMO_PRETEXT_EPOCHS})
    return config, default


def _cmd_demo(args: argparse.Namespace) -> int:
    from semclust.core.paths import default_cache_dir

    config, default = demo_config(args)
    out = args.out or str(default_cache_dir() / "demo" / "run")
    print(f"Demo: {args.folder} (1,797 real handwritten digits, 10 classes) -> run folder {out}")
    _say_representation(config, default, args)
    return _run(args.folder, out, config, args)


def _run(folder: str, out: str, config: RunConfig, args: argparse.Namespace) -> int:
    from semclust.core.images import InputError
    from semclust.core.progress import Cancelled, CancelToken
    from semclust.core.representation.pretrained import WeightsUnavailable
    from semclust.core.run import run_pipeline

    try:
        with ConsoleProgress(quiet=args.quiet) as show:
            run = run_pipeline(folder, out, config, show, CancelToken(), cache_dir=args.cache_dir)
    except (InputError, WeightsUnavailable) as exc:  # a download failing after the network answered
        print(f"semclust: {exc}", file=sys.stderr)
        return 2
    except Cancelled as exc:
        print(f"semclust: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nsemclust: interrupted; run the same command again to continue.", file=sys.stderr)
        return 130
    except FloatingPointError as exc:
        print(f"semclust: training failed: {exc}", file=sys.stderr)
        return 1
    print(summary(run.metrics, run.paths.labels_csv))
    return 0


def summary(metrics: dict, csv_path: Path) -> str:
    """A readable report of a finished run."""
    lines = [
        f"\n{metrics['n_images']} images in {metrics['clusters']} clusters "
        f"({metrics['clusters_used']} used); {metrics['n_skipped']} files skipped."
    ]
    if "auto_clusters" in metrics:
        low, high = metrics["auto_clusters"]["range"]
        lines.append(
            f"number of clusters chosen without labels among {low}-{high}: {metrics['clusters']}"
        )
    if "acc" in metrics:
        lines.append(
            f"ACC {metrics['acc']:.3f}   NMI {metrics['nmi']:.3f}   ARI {metrics['ari']:.3f}"
            f"   (neighbour purity {metrics['neighbour_purity']:.3f})"
        )
        if "before_selflabel" in metrics:
            b = metrics["before_selflabel"]
            lines.append(
                f"before self-labelling: ACC {b['acc']:.3f}   NMI {b['nmi']:.3f}   ARI {b['ari']:.3f}"
            )
    lines.append(f"{'cluster':>7} {'size':>6} {'majority':>12} {'purity':>7} {'conf':>6}")
    for c in metrics["per_cluster"]:
        purity = f"{c['purity']:.3f}" if c["purity"] is not None else "-"
        conf = f"{c['mean_confidence']:.3f}" if c["mean_confidence"] is not None else "-"
        lines.append(
            f"{c['cluster']:>7} {c['size']:>6} {str(c['majority_label'] or '-')[:12]:>12} {purity:>7} {conf:>6}"
        )
    seconds = {k: v for k, v in metrics["stage_seconds"].items() if v is not None}
    lines.append("minutes per stage: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items()))
    lines.append(f"labels: {csv_path}")
    return "\n".join(lines)


def _cmd_export(args: argparse.Namespace) -> int:
    from semclust.core.runfolder.export import export_cluster_folders, export_labels
    from semclust.core.runfolder.results import load_run

    try:
        run = load_run(args.run, image_root=args.image_root)
        csv_path = export_labels(run, args.csv or run.paths.labels_csv)
        print(f"labels: {csv_path}")
        if args.folders:
            print(f"copies: {export_cluster_folders(run, args.folders)}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"semclust: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from semclust.gui.app import main as gui_main  # Qt is imported only here, never by core

    return gui_main([args.path] if args.path else [])


if __name__ == "__main__":
    sys.exit(main())
