"""Drop-connect on the crossbar layers, as a weight parametrization: in train mode every forward draws a
fresh Bernoulli(1-p) keep-mask (shared by the whole batch) and scales survivors by 1/(1-p); dropped
weights therefore get zero gradient that step. No copy of the model is ever made."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from dse.core.crossbar.mapping import MappingPolicy, crossbar_layers
from dse.core.errors import DSEError


def check_rate(rate, what: str = "drop-connect rate") -> float:
    """A probability in [0, 1): 1 would drop every weight (and divide by zero)."""
    try:
        p = float(rate)
    except (TypeError, ValueError):
        raise DSEError(f"{what} must be a number in [0, 1), got {rate!r}") from None
    if not 0.0 <= p < 1.0:  # also rejects NaN
        raise DSEError(f"{what} must be in [0, 1), got {rate!r}")
    return p


class DropConnect(nn.Module):
    """W -> W * M / (1-p), M ~ Bernoulli(1-p) per weight, drawn anew on each forward in train mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = check_rate(p)

    def forward(self, weight: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return weight
        # U >= p is Bernoulli(1-p), made in place as 1/(1-p) or 0: a third of bernoulli_'s cost, one multiply each way
        keep = torch.rand_like(weight).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return weight * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def add_dropconnect(model: nn.Module, p: float, policy: MappingPolicy | str = "default") -> nn.Module:
    """Register drop-connect on exactly the crossbar layers of `model` (in place) and return it."""
    p = check_rate(p)
    for module in crossbar_layers(model, policy).values():
        parametrize.register_parametrization(module, "weight", DropConnect(p))
    return model


def set_dropconnect_rate(model: nn.Module, p: float) -> None:
    """Change the rate of every drop-connect parametrization (used by BN calibration at rate p')."""
    p = check_rate(p)
    for m in model.modules():
        if isinstance(m, DropConnect):
            m.p = p


def remove_dropconnect(model: nn.Module) -> nn.Module:
    """Drop the parametrizations, keeping the learnt (unmasked) weights."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    return model


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """state_dict with parametrized names mapped back to plain ones (`x.parametrizations.weight.original`
    -> `x.weight`), so checkpoints load into an unparametrized model."""
    out = {}
    for key, value in model.state_dict().items():
        out[key.replace(".parametrizations.weight.original", ".weight")] = value
    return out
