"""Crossbar mapping policy: which layers live on the RRAM crossbar (and so get drop-connect and faults)
and which run fault-free on a conventional processor. One definition serves training, faults and cost."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from dse.core.errors import DSEError


@dataclass(frozen=True)
class MappingPolicy:
    """Convs with kernel > 1x1 are always on the crossbar; 1x1 convs and linears are a choice."""

    conv1x1_on_crossbar: bool = False  # paper: off, a stuck cell there wipes whole channels
    linear_on_crossbar: bool = False

    @property
    def name(self) -> str:
        for name, policy in POLICIES.items():
            if policy == self:
                return name
        raise AssertionError("every policy combination has a name")

    @classmethod
    def parse(cls, name: str) -> "MappingPolicy":
        if isinstance(name, MappingPolicy):
            return name
        if name not in POLICIES:
            raise DSEError(f"unknown mapping policy {name!r}; choose one of {', '.join(POLICIES)}")
        return POLICIES[name]

    def on_crossbar(self, module: nn.Module) -> bool:
        if isinstance(module, nn.Conv2d):
            return module.kernel_size != (1, 1) or self.conv1x1_on_crossbar
        if isinstance(module, nn.Linear):
            return self.linear_on_crossbar
        return False


POLICIES: dict[str, MappingPolicy] = {
    "default": MappingPolicy(),  # the paper's choice
    "1x1-on-crossbar": MappingPolicy(conv1x1_on_crossbar=True),  # the paper's Fig. 7 contrast
    "linear-on-crossbar": MappingPolicy(linear_on_crossbar=True),
    "all-on-crossbar": MappingPolicy(conv1x1_on_crossbar=True, linear_on_crossbar=True),
}


def crossbar_layers(model: nn.Module, policy: MappingPolicy | str = "default") -> dict[str, nn.Module]:
    """The model's crossbar layers by qualified name, in module order."""
    policy = MappingPolicy.parse(policy)
    return {name: m for name, m in model.named_modules() if policy.on_crossbar(m)}


def crossbar_shapes(model: nn.Module, policy: MappingPolicy | str = "default") -> dict[str, tuple[int, ...]]:
    """Weight shapes of the crossbar layers (works on a model built on the meta device)."""
    return {name: tuple(m.weight.shape) for name, m in crossbar_layers(model, policy).items()}
