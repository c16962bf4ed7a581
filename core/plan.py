"""From a folder and the user's choices to a run's plan, once, for every front end.

:func:`plan_run` looks at the folder (a sample of image headers: their typical side, whether they are
grey), picks the default representation for such images (a pretrained backbone whose weights are here,
else EfficientNet-Lite2 fetched on first use: :func:`~semclust.core.representation.backbones.
default_representation`) and builds the run configuration of the user's choices on top
(:func:`~semclust.core.choices.build_config`: the representation, the image size for these images, the
feature layer left to the run as ``auto``). The command line (``semclust run``, ``semclust demo``), the
window (on a background thread, once a folder is opened) and the benchmark (``bench/default_run.py``)
all call it, and say the default's reason in the same words (:attr:`Plan.reason`).

Two things are settled later, by the run itself (:mod:`semclust.core.run`), because they need more
than the plan may do on a window's thread or before the folder is checked: whether the chosen
backbone's weights can be fetched (else it falls back, saying why), and the feature layer (``auto``
becomes ``mid`` for small grey images, judged on every ingested image).

Example:
    >>> here = Representation("mobilenet", "pretrained", True, "Pretrained: mobilenet, cached.")
    >>> plan = plan_run("/no/such/folder", RunChoices(clusters=4), find_default=lambda grey: here)
    >>> (plan.config.encoder.backbone, plan.config.ingest.image_size, plan.look.survey)
    ('mobilenet', 96, None)
    >>> plan.reason if plan.uses_default else ""
    'Pretrained: mobilenet, cached.'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from semclust.core.choices import RunChoices, build_config, with_default_representation
from semclust.core.config import RunConfig
from semclust.core.images import FolderSurvey, InputError, survey_folder, typical_look
from semclust.core.representation import backbones
from semclust.core.representation.backbones import Representation, small_grey


@dataclass(frozen=True)
class FolderLook:
    """What a sample of the folder's image headers says.

    Attributes:
        survey: the folder's image files and class subfolders; ``None``: no folder (yet), or one that
            cannot be read.
        side: the images' typical shorter side in pixels, or ``None`` when unknown.
        grey: whether most of them are single-channel.
    """

    survey: FolderSurvey | None = None
    side: int | None = None
    grey: bool = False

    @property
    def small_grey(self) -> bool:
        """Small grey images (digits, silhouettes) have a default representation of their own."""
        return small_grey(self.grey, self.side)


def look_at(folder: str | Path) -> FolderLook:
    """Lists the folder's images and reads a sample of their headers.

    Raises:
        InputError: the folder does not exist or is not a folder.
    """
    survey = survey_folder(folder)
    return FolderLook(survey, *typical_look(survey))


@dataclass(frozen=True)
class Plan:
    """A run's configuration, the default representation it started from, and the folder's look.

    Attributes:
        config: the configuration to run.
        default: the representation a new run of this folder starts from, and why.
        look: what the folder's image headers say.
    """

    config: RunConfig
    default: Representation
    look: FolderLook

    @property
    def reason(self) -> str:
        """Why the default representation: the line both front ends show."""
        return self.default.reason

    @property
    def uses_default(self) -> bool:
        """Whether the configuration runs the default backbone (then :attr:`reason` applies)."""
        return self.config.encoder.backbone == self.default.backbone

    def with_choices(self, choices: RunChoices, base: RunConfig | None = None) -> Plan:
        """The plan of other choices for the same folder and default: no survey, no look-up."""
        config = build_config(
            with_default_representation(choices, self.default), base, self.look.side
        )
        return replace(self, config=config)


def plan_run(
    folder: str | Path | None,
    choices: RunChoices | None = None,
    *,
    cache_dir: str | Path | None = None,
    base: RunConfig | None = None,
    look: FolderLook | None = None,
    find_default: Callable[[bool], Representation] | None = None,
) -> Plan:
    """The plan of a run of ``folder`` with these choices.

    Args:
        folder: the image folder; ``None`` (none open yet) or one that cannot be read plans as for
            images of unknown size (the run says what is wrong with the folder).
        choices: what the user chose; default: nothing (every default).
        cache_dir: where the run caches, which is searched for weights too.
        base: settings the choices do not cover (an earlier run's being continued).
        look: the folder's look when it was already taken (the window surveys on opening).
        find_default: the default representation for small grey images (``True``) or others;
            default: :func:`~semclust.core.representation.backbones.default_representation`, which
            looks only at what is here (no network), so that a front end never waits on it.
    """
    if look is None:
        try:
            look = look_at(folder) if folder is not None else FolderLook()
        except InputError:
            look = FolderLook()
    if find_default is None:

        def find_default(small_grey_images: bool) -> Representation:
            return backbones.default_representation(cache_dir, small_grey_images)

    plan = Plan(RunConfig(), find_default(look.small_grey), look)
    return plan.with_choices(choices or RunChoices(), base)
