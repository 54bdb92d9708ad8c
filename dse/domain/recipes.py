"""Named training recipes (torch-free, so tasks and the page can name them). `legacy` is the recipe the
first shipped grid was trained with; `converged` adds those architecture-independent tricks that the recipe
study (docs/training.md) measured to help (so far the triangular schedule); the others stay options. Every
field is recorded in the checkpoint's metadata."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from dse.domain.errors import DSEError

SCHEDULES = ("cosine", "triangular")


@dataclass
class Recipe:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.2  # peak learning rate for batch_size images
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0  # linear warm-up, then the schedule's decay to zero
    crop_pad: int = 4
    name: str = "legacy"  # the named recipe these values started from (RECIPES)
    schedule: str = "cosine"  # after warm-up: cosine or triangular (linear) decay to zero
    ema: float = 0.0  # decay of an EMA of the weights per step (0: off); the EMA is what is saved
    cutout: int = 0  # side of a zeroed square per training image (0: off)
    bn_lr_scale: float = 1.0  # BN weights/biases: lr times this, weight decay divided by it

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise DSEError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.ema < 1.0:
            raise DSEError(f"ema decay must be in [0, 1), got {self.ema!r}")
        if not 0 <= self.cutout <= 32:
            raise DSEError(f"cutout must be 0 (off) to 32 pixels, got {self.cutout!r}")
        if not (self.bn_lr_scale > 0 and math.isfinite(self.bn_lr_scale)):
            raise DSEError(f"bn_lr_scale must be a positive number, got {self.bn_lr_scale!r}")

    def identity(self) -> dict:
        """asdict without the fields added after `legacy` when they are at its values (older partials resume)."""
        d = asdict(self)
        defaults = {f.name: f.default for f in fields(Recipe)}
        for key in _ADDED_LATER:
            if d[key] == defaults[key]:
                d.pop(key)
        return d


_ADDED_LATER = ("name", "schedule", "ema", "cutout", "bn_lr_scale")  # fields a legacy partial's identity lacks
RECIPES: dict[str, Recipe] = {  # name -> recipe; docs/training.md has the study behind `converged`
    "legacy": Recipe(),
    "converged": Recipe(name="converged", epochs=100, schedule="triangular"),  # the study: only this step helped
}
DEFAULT_RECIPE = "converged"


def recipe(name: str = DEFAULT_RECIPE, **overrides) -> Recipe:
    """The named recipe with some fields replaced (None values are ignored: unset CLI options)."""
    if name not in RECIPES:
        raise DSEError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


# The recipe study (`python -m dse recipe-study`): today's recipe, then the architecture-independent tricks
# added one at a time, each step keeping the ones before it (name, fields changed from `legacy`).
STUDY_STEPS: tuple[tuple[str, dict], ...] = (
    ("legacy", {}),
    ("+triangular", {"schedule": "triangular"}),
    ("+ema", {"schedule": "triangular", "ema": 0.995}),
    ("+cutout", {"schedule": "triangular", "ema": 0.995, "cutout": 8}),
    ("+bn-lr", {"schedule": "triangular", "ema": 0.995, "cutout": 8, "bn_lr_scale": 4.0}),
)
