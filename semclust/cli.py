"""``semclust``: the command line. ``run`` clusters a folder, ``export`` writes labels, ``assign`` places
new images into a finished run, ``report`` writes a run's HTML report, ``demo`` runs the whole pipeline
on built-in handwritten digits, ``cache`` lists and frees semclust's cache of decoded images, ``gui``
opens the desktop app."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from semclust.console import ConsoleProgress, silence_backend_noise
from semclust.core.choices import RunChoices, build_config
from semclust.core.clustering.k_choice import KChoice
from semclust.core.config import RunConfig
from semclust.core.param import Declared, declared
from semclust.core.progress import format_seconds

#: SimCLR epochs of ``semclust demo`` when it learns from scratch (``--weights none``, or no pretrained
#: weights here and none to fetch): measured ACC 0.86 on the 1,797 digits in about 3 minutes on 2 cores.
DEMO_PRETEXT_EPOCHS = 20


#: The --cache-dir option's help, for run and assign alike.
CACHE_HELP = (
    "semclust's cache: decoded images and fetched weights (default: $SEMCLUST_CACHE, "
    "else ~/.cache/semclust)"
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    # Before anything imports TensorFlow: its start-up lines are hidden, real errors still shown.
    silence_backend_noise(import_backend=args.command in ("run", "demo", "assign"))
    try:
        return args.func(args)
    except BrokenPipeError:  # piped into a command that stopped reading (| head): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


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

    export = sub.add_parser(
        "export", help="export labels (with corrections), folders or a model of a finished run"
    )
    export.add_argument("run", help="run folder")
    export.add_argument("--csv", help="where to write the labels CSV (default: RUN/labels.csv)")
    export.add_argument("--folders", help="also copy the images into one folder per cluster here")
    export.add_argument(
        "--model",
        metavar="FILE.keras",
        help="write the clusters as one Keras classifier (pixels in, clusters out), with the run's "
        "HTML card and a JSON of the clusters' names beside it; alone, it writes no labels CSV",
    )
    _add_image_root(export)
    export.set_defaults(func=_cmd_export)

    report = sub.add_parser(
        "report", help="write a finished run as one self-contained HTML page to share"
    )
    report.add_argument("run", help="run folder")
    report.add_argument("--out", help="the HTML file to write (default: RUN/report.html)")
    report.add_argument(
        "--per-cluster", type=int, default=8, metavar="N",
        help="images shown per cluster, 0 to 100 (default: 8)",
    )  # fmt: skip
    _add_image_root(report)
    report.set_defaults(func=_cmd_report)

    assign = sub.add_parser(
        "assign", help="assign new images to a finished run's clusters, without retraining"
    )
    assign.add_argument("run", help="a finished run folder")
    assign.add_argument(
        "folder", help="folder of new images (searched recursively; never written to)"
    )
    assign.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    assign.add_argument("--quiet", action="store_true")
    assign.set_defaults(func=_cmd_assign)

    cache = sub.add_parser(
        "cache",
        help="list semclust's cache of decoded images, and free the space runs no longer need",
    )
    cache.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    cache.add_argument(
        "--remove-stale", action="store_true",
        help="remove the stores no run will read again: their folder is gone, or they were written "
        "for an older version of the cache",
    )  # fmt: skip
    cache.add_argument(
        "--remove-unused", type=_days, metavar="DAYS",
        help="remove the stores no run or window has read for DAYS days (0: all but those being "
        "written); a later run of their folder decodes its images again",
    )  # fmt: skip
    cache.set_defaults(func=_cmd_cache)

    gui = sub.add_parser("gui", help="open the desktop app")
    gui.add_argument("path", nargs="?", help="an image folder or a run folder")
    gui.set_defaults(func=_cmd_gui)
    return parser


def _add_image_root(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image-root",
        help="where the images are now, if they moved since the run (say, a run made elsewhere)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """One option per declared run parameter (:class:`~semclust.core.choices.RunChoices`), then
    the command line's own."""
    for d in declared(RunChoices):
        p.add_argument(d.param.flag, dest=d.name, default=d.default, **_option(d))
    p.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    p.add_argument("--quiet", action="store_true")


def _option(d: Declared) -> dict:
    """argparse's keywords for a declared parameter: its kind, choices and help."""
    p = d.param
    help_ = p.help.replace("%", "%%")
    if d.kind == "bool":
        on = not d.default  # a switch on by default is declared with the option that turns it off
        return {"action": "store_true" if on else "store_false",
                "help": help_ if on else f"{help_} On by default; this option turns it off."}  # fmt: skip
    keywords = {"metavar": p.metavar}
    if p.parse is not None:
        keywords["type"] = _argument_type(p.parse)
    elif d.kind in ("int", "float"):
        keywords["type"] = int if d.kind == "int" else float
    if p.choices and not p.free:
        keywords["choices"] = p.choices
    if d.shown is not None and (d.default is not None or not p.derived):  # else help says it
        shown = ",".join(map(str, d.shown)) if isinstance(d.shown, tuple) else d.shown
        help_ += f" (default: {shown})"
    return {**keywords, "help": help_}


def _argument_type(parse):
    """A declared parser as an argparse type: its ValueError's words become the error message."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def choices_from_args(args: argparse.Namespace) -> RunChoices:
    """What ``run``/``demo``'s options chose, in the words the window uses too."""
    return RunChoices(**{d.name: getattr(args, d.name) for d in declared(RunChoices)})


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The configuration of the options alone: no folder looked at, no default representation (from
    scratch unless the options name a pretrained backbone or weights)."""
    return build_config(choices_from_args(args))


def folder_plan(args: argparse.Namespace):
    """``run``'s :class:`~semclust.core.plan.Plan` for its folder: the folder looked at, the default
    representation for its images (small grey ones prefer a backbone with a mid-level layer) and
    the options' configuration on top."""
    from semclust.core.plan import plan_run

    try:
        return plan_run(args.folder, choices_from_args(args), cache_dir=args.cache_dir)
    except ValueError as exc:  # an option out of its declared range, say
        print(f"semclust: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_config(argv: list[str]) -> RunConfig:
    """The configuration ``semclust run ARGV`` would use (benchmarks run exactly what users run)."""
    return folder_plan(_parser().parse_args(["run", *argv])).config


def _cmd_run(args: argparse.Namespace) -> int:
    plan = folder_plan(args)
    _say_representation(plan, args)
    return _run(args.folder, args.out, plan.config, args)


def _say_representation(plan, args: argparse.Namespace) -> None:
    if plan.uses_default and not args.quiet:
        print(f"Representation: {plan.reason}")


def demo_config(args: argparse.Namespace):
    """``demo``'s plan: the default of ``run`` for the digits (pretrained when weights are here or
    can be fetched), or :data:`DEMO_PRETEXT_EPOCHS` of SimCLR when it learns from scratch."""
    from dataclasses import replace

    from semclust.core.demo import write_digits_folder

    args.folder = str(write_digits_folder())
    plan = folder_plan(args)
    if plan.config.encoder.weights is None and args.pretext_epochs is None:
        plan = replace(plan, config=plan.config.replace(**{"pretext.epochs": DEMO_PRETEXT_EPOCHS}))
    return plan


def _cmd_demo(args: argparse.Namespace) -> int:
    from semclust.core.paths import default_cache_dir

    plan = demo_config(args)
    out = args.out or str(default_cache_dir() / "demo" / "run")
    print(f"Demo: {args.folder} (1,797 real handwritten digits, 10 classes) -> run folder {out}")
    _say_representation(plan, args)
    return _run(args.folder, out, plan.config, args)


def _run(folder: str, out: str, config: RunConfig, args: argparse.Namespace) -> int:
    from semclust.core.images import InputError
    from semclust.core.metrics import close_said
    from semclust.core.progress import Cancelled, CancelToken
    from semclust.core.representation.pretrained import WeightsUnavailable
    from semclust.core.run import run_pipeline
    from semclust.core.runfolder.image_list import read_skipped

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
    print(summary(
        run.metrics, run.paths.labels_csv, run.suggested_names, run.suggested_confidence,
        run.k_choice,
    ))  # fmt: skip
    if skipped := read_skipped(run.paths):
        print(f"skipped files and why: {run.paths.skipped}{_pixel_limit_hint(skipped, run.config)}")
    if look := run.look_alike():
        print(
            f"{look.describe()} To look and merge: semclust gui {shlex.quote(str(run.paths.root))}"
        )
    if close := run.close_alternative:
        print(
            f"{close_said(*close)} To compare, run the same command with --method {close[0]} (the "
            "features are kept: only the clustering is made again)."
        )
    return 0


def _pixel_limit_hint(skipped: list[tuple[str, str]], config: RunConfig) -> str:
    """What to do about the files left out for their size alone, or ``""``."""
    from semclust.core.images import over_the_pixel_limit

    large = over_the_pixel_limit(skipped)
    if not large:
        return ""
    limit = config.ingest.max_image_pixels / 1e6
    return (
        f"; {large} over the pixel limit of {limit:,.0f} megapixels: --max-megapixels lets them in"
    )


def summary(
    metrics: dict,
    csv_path: Path,
    names: dict[int, str] | None = None,
    name_confidence: dict[int, float] | None = None,
    k_choice: dict | None = None,
) -> str:
    """A readable report of a finished run; the clusters' suggested names (with their confidence)
    close each cluster's row; ``k_choice`` (``choose_k.json``, as the run loaded it) names the numbers
    of clusters that scored nearly as well."""
    names, name_confidence = names or {}, name_confidence or {}
    lines = [
        f"\n{metrics['n_images']} images in {metrics['clusters']} clusters "
        f"({metrics['clusters_used']} used); {metrics['n_skipped']} files skipped."
    ]
    if "auto_clusters" in metrics:
        low, high = metrics["auto_clusters"]["range"]
        how = (
            "picked (--use-k)"
            if metrics["auto_clusters"].get("picked")
            else "chosen without labels"
        )
        line = f"number of clusters {how} among {low}-{high}: {metrics['clusters']}"
        ties = KChoice.from_dict(k_choice).ties_said if k_choice else ""
        if ties:
            line += f" ({ties})"
        lines.append(line)
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
    lines.append(f"{'cluster':>7} {'size':>6} {'majority':>12} {'purity':>7} {'conf':>6}  name")
    for c in metrics["per_cluster"]:
        purity = f"{c['purity']:.3f}" if c["purity"] is not None else "-"
        conf = f"{c['mean_confidence']:.3f}" if c["mean_confidence"] is not None else "-"
        name = names.get(c["cluster"], "-")
        if c["cluster"] in name_confidence:
            name += f" ({name_confidence[c['cluster']]:.0%})"
        lines.append(
            f"{c['cluster']:>7} {c['size']:>6} {str(c['majority_label'] or '-')[:12]:>12} {purity:>7} {conf:>6}  {name}"
        )
    seconds = {k: v for k, v in metrics["stage_seconds"].items() if v is not None}
    lines.append(
        "time per stage: " + ", ".join(f"{k} {format_seconds(v)}" for k, v in seconds.items())
    )
    lines.append(f"labels: {csv_path}")
    return "\n".join(lines)


def _cmd_export(args: argparse.Namespace) -> int:
    from semclust.core.runfolder.export import (
        check_csv_path,
        export_cluster_folders,
        export_labels,
        plan_cluster_folders,
    )
    from semclust.core.runfolder.results import load_run

    try:
        run = load_run(args.run, image_root=args.image_root)
        csv_path = args.csv or run.paths.labels_csv
        labels = bool(args.csv or args.folders or not args.model)
        if labels:
            check_csv_path(run, csv_path)  # everything checked before anything is written
        if args.folders:
            plan_cluster_folders(run, args.folders)
        if args.model:
            from semclust.core.runfolder.model_export import check_model_path

            check_model_path(run, args.model)
        if labels:
            print(f"labels: {export_labels(run, csv_path)}")
        if args.folders:
            print(f"copies: {export_cluster_folders(run, args.folders)}")
        if args.model:
            _export_model(run, args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"semclust: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only run folder, a full disk
        print(
            f"semclust: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0


def _export_model(run, path: str) -> None:
    from semclust.core.runfolder.model_export import export_model

    done = export_model(run, path)
    checked = (
        f", {done.checked_agreement:.1%} of {done.checked} images read again"
        if done.checked_agreement is not None
        else ""
    )
    print(f"model: {done.model} (card {done.card.name}, cluster names in {done.info.name})")
    print(f"  agrees with the run's clusters on {done.agreement:.1%} of its images{checked}")
    if done.held_out is not None:
        print(f"  on images it was not fitted on (a held-out fifth): {done.held_out:.1%}")
    for note in done.notes:
        print(f"  note: {note}")


def _cmd_report(args: argparse.Namespace) -> int:
    from semclust.core.runfolder.report import write_report
    from semclust.core.runfolder.results import load_run

    try:
        run = load_run(args.run, image_root=args.image_root)
        print(f"report: {write_report(run, args.out, args.per_cluster)}")
    except (FileNotFoundError, ValueError) as exc:  # not a run, a damaged one, a path refused
        print(f"semclust: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only folder, a full disk
        print(
            f"semclust: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0


def _cmd_assign(args: argparse.Namespace) -> int:
    from semclust.core.progress import Cancelled, CancelToken
    from semclust.core.runfolder.assign import assign_folder

    try:
        with ConsoleProgress(quiet=args.quiet) as show:
            result = assign_folder(
                args.run, args.folder, show, CancelToken(), cache_dir=args.cache_dir
            )
    except (FileNotFoundError, ValueError) as exc:  # not a finished run, no images, a damaged file
        print(f"semclust: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only run folder, a full disk
        print(
            f"semclust: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    except (Cancelled, KeyboardInterrupt):
        print("\nsemclust: interrupted; nothing was written.", file=sys.stderr)
        return 130
    added = result.added
    mean = float(added.confidence.mean())
    print(f"assigned: {len(added.paths)} images of {added.root} (mean confidence {mean:.2f})")
    if added.skipped:
        shown = "; ".join(f"{rel}: {reason}" for rel, reason in added.skipped[:5])
        more = f"; {len(added.skipped) - 5} more in added.json" if len(added.skipped) > 5 else ""
        n = len(added.skipped)
        print(f"skipped: {n} file{'s' * (n != 1)} ({shown}{more})")
    else:
        print("skipped: 0 files")
    for note in result.notes:
        print(f"note: {note}")
    print(f"written: {result.written} (labels.csv lists them after `semclust export {args.run}`)")
    return 0


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:
        raise argparse.ArgumentTypeError(f"a number of days, 0 or more: {text!r}")
    return days


def _cmd_cache(args: argparse.Namespace) -> int:
    import time

    from semclust.core.image_store import remove_store
    from semclust.core.images import cache_stores, describe_store
    from semclust.core.paths import bytes_under, default_cache_dir, images_cache_dir
    from semclust.core.progress import format_bytes

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    stores = cache_stores(root)
    total = format_bytes(sum(s.bytes for s in stores))
    print(f"semclust's cache: {root}")
    print(f"decoded images ({images_cache_dir(root)}): {_count(stores, 'store')}, {total}")
    if stores:
        print(f"  {'last used':<10}  {'size':>5}  {'images':>9}  {'on disk':>9}  folder")
    for s in stores:
        used = time.strftime("%Y-%m-%d", time.localtime(s.last_used))
        images = "?" if s.images is None else f"{s.images:,}"
        folder, note = describe_store(s)
        note = f"  [{note}]" if note else ""
        print(
            f"  {used:<10}  {s.size:>3}px  {images:>9}  {format_bytes(s.bytes):>9}  {folder}{note}"
        )
    others = sorted(p for p in _entries(root) if p.is_dir() and p.name != "images")
    if others:
        print("also: " + ", ".join(f"{p.name} {format_bytes(bytes_under([p]))}" for p in others))
    now, stale = time.time(), [s for s in stores if s.stale]
    unused_for = None if args.remove_unused is None else args.remove_unused * 86_400
    doomed = [s for s in stores if (args.remove_stale and s.stale)
              or (unused_for is not None and now - s.last_used >= unused_for)]  # fmt: skip
    if not doomed:
        if stale and not args.remove_stale:
            print(f"{_count(stale, 'store')} no run will read again "
                  f"({format_bytes(sum(s.bytes for s in stale))}): --remove-stale removes "
                  f"{'them' if len(stale) > 1 else 'it'}.")  # fmt: skip
        elif args.remove_stale or args.remove_unused is not None:
            print("Nothing to remove.")
        return 0
    removed = [s for s in doomed if remove_store(s)]
    print(
        f"removed {_count(removed, 'store')}, {format_bytes(sum(s.bytes for s in removed))} freed"
    )
    if kept := [s for s in doomed if s not in removed]:
        print(f"kept {len(kept)} in use: {', '.join(str(s.folder) for s in kept)}")
    return 0


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'s' * (len(items) != 1)}"


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _cmd_gui(args: argparse.Namespace) -> int:
    from semclust.gui.app import main as gui_main  # Qt is imported only here, never by core

    return gui_main([args.path] if args.path else [])


if __name__ == "__main__":
    sys.exit(main())
