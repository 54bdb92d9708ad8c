"""How BatchNorm statistics are obtained under faults: the three protocols an evaluation can use, as small
frozen classes (only `Chip` carries an image count), their names in the store, jobs and sweep specs
("paper", "chip", "batch"), and how tables and charts name them. Torch-free; the statistics themselves are
computed in dse/core/evaluation/calibrate.py and used in dse/core/evaluation/evaluate.py.

    match bn:
        case Paper(): ...            # Algorithm 1's statistics for p' = f (the paper's protocol)
        case Chip(images=n): ...     # re-estimated through each faulty chip from n unlabeled training images
        case Batch(): ...            # each test batch's own (transductive, an ablation)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import ClassVar

from dse.domain.errors import DSEError

DEFAULT_CALIB_IMAGES = 500  # the chip protocol's N unless one is given


@dataclass(frozen=True)
class Paper:
    """The paper's Algorithm 1: statistics calibrated for p' = f (the nearest calibrated rate otherwise)."""
    name: ClassVar[str] = "paper"
    recalibrate: bool = True  # False: the trained statistics at every rate (an ablation, --no-recalibrate)

    @property
    def images(self) -> int:
        return 0

    @property
    def label(self) -> str:
        return "paper (Algorithm 1)" if self.recalibrate else "trained (not recalibrated)"


@dataclass(frozen=True)
class Chip:
    """Statistics re-estimated through each faulty chip from `images` unlabeled training images."""
    name: ClassVar[str] = "chip"
    images: int = DEFAULT_CALIB_IMAGES

    def __post_init__(self):
        if isinstance(self.images, bool) or not isinstance(self.images, numbers.Integral) or self.images < 1:
            raise DSEError(f"calibration images must be a positive integer, got {self.images!r}")
        object.__setattr__(self, "images", int(self.images))  # a numpy integer from a table, as a plain int

    @property
    def label(self) -> str:
        return f"chip (N={self.images})"


@dataclass(frozen=True)
class Batch:
    """Each test batch normalised with its own statistics (transductive: an ablation)."""
    name: ClassVar[str] = "batch"

    @property
    def images(self) -> int:
        return 0

    @property
    def label(self) -> str:
        return "batch (transductive)"


BN = Paper | Chip | Batch
BN_PROTOCOLS = tuple(c.name for c in (Paper, Chip, Batch))  # the names the store, jobs and specs use
# The one BN default of every command, job, sweep spec and the page: each chip re-estimates its statistics on
# DEFAULT_CALIB_IMAGES unlabeled training images. `--bn paper` (the page: "paper") is the paper's Algorithm 1.
DEFAULT_BN = Chip.name
BN_CHOICES = (DEFAULT_BN, *(b for b in BN_PROTOCOLS if b != DEFAULT_BN))  # how selectors list them: default first
LEGACY_BN = Paper.name  # what a record written before protocols were recorded (no `bn`) was evaluated under


def check_bn_protocol(name: str) -> str:
    if name not in BN_PROTOCOLS:
        raise DSEError(f"unknown BN protocol {name!r}; choose one of {', '.join(BN_PROTOCOLS)}")
    return name


def parse_bn(name: str, images: int | None = None, *, recalibrate: bool = True) -> BN:
    """The protocol a stored or typed name stands for; `images` is read for `chip` only (None: the default N),
    `recalibrate` (False: the trained statistics at every rate, an ablation) for `paper` only."""
    if not recalibrate and name != Paper.name:
        raise DSEError(f"--no-recalibrate applies to the paper BN protocol only, not to {name!r}")
    match check_bn_protocol(name):
        case "paper":
            return Paper(recalibrate=bool(recalibrate))
        case "chip":
            return Chip(DEFAULT_CALIB_IMAGES if images is None else images)
        case _:
            return Batch()


def bn_label(bn: str, calib_images: int | None = None) -> str:
    """How a number's BatchNorm statistics were obtained, as tables and charts name it (from stored names)."""
    return parse_bn(bn, calib_images or None).label
