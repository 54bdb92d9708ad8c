"""A design point: (network, width, shortcut kernel, mapping policy, drop-connect rate). Its id is a hash of
those, so the same configuration always lands on the same row of the results store, whoever writes it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class DesignPoint:
    network: str
    width: float
    shortcut_kernel: int = 1
    mapping: str = "default"
    dropconnect: float = 0.0

    @property
    def point_id(self) -> str:
        return point_id(self.network, self.width, self.shortcut_kernel, self.mapping, self.dropconnect)

    @classmethod
    def of(cls, meta: dict) -> "DesignPoint":
        """The design point a checkpoint's metadata (or a table row with those columns) describes."""
        return cls(meta["network"], float(meta["width"]), int(meta["shortcut_kernel"]), meta["mapping"],
                   float(meta["dropconnect"]))


def point_id(network: str, width: float, shortcut_kernel: int, mapping: str, dropconnect: float) -> str:
    key = f"{network}|{float(width):.4f}|{int(shortcut_kernel)}|{mapping}|{float(dropconnect):.4f}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def label(r) -> str:
    """A design point's short name, e.g. "resnet20 1.6x k1 p=0.3 [1x1-on-crossbar]" (r: a row or dict)."""
    sk = f" k{int(r['shortcut_kernel'])}" if r["network"] == "resnet20" else ""
    mp = "" if r["mapping"] == "default" else f" [{r['mapping']}]"
    return f"{r['network']} {r['width']:g}x{sk} p={r['dropconnect']:g}{mp}"
