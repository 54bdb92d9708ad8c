"""The crossbar journal: an evaluation writes the accuracy of every crossbar instance it finishes beside its
checkpoint (`<checkpoint>.crossbars-<key>.partial`, atomically), so a killed run resumes where it stopped
and a later run asking more instances of the same weights, seed, test images and BN protocol runs only the
new ones (instance i is the same fault map whatever the instance count)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dse.core.io.atomic import atomic_write
from dse.core.protocol import LEGACY_BN


@dataclass(frozen=True)
class Journal:
    checkpoint: str
    sha: str  # the weights' digest: a journal of other weights is ignored
    rate: float
    seed: int
    test_images: int | None
    bn: str = LEGACY_BN  # a journal written before protocols were recorded is the paper's
    calib_images: int = 0
    fault_model: str = "sa1"

    @property
    def path(self) -> Path:
        key = [self.sha, float(self.rate), self.seed, self.test_images]
        if self.bn != "paper":  # a chip's accuracy depends on the protocol; the paper's journals keep their names
            key += [self.bn, self.calib_images]
        if self.fault_model != "sa1":  # likewise: SA1 journals keep their names
            key += [self.fault_model]
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        return Path(f"{self.checkpoint}.crossbars-{digest}.partial")

    def write(self, accuracies: list[float], seconds: float) -> None:
        doc = {"checkpoint_sha": self.sha, "fault_rate": self.rate, "seed": self.seed,
               "test_images": self.test_images, "bn": self.bn, "calib_images": self.calib_images,
               "fault_model": self.fault_model, "accuracies": list(accuracies), "seconds": round(seconds, 3)}
        atomic_write(self.path, json.dumps(doc).encode())

    def read(self) -> tuple[list[float], float]:
        """The crossbars finished earlier and the seconds they took; an unreadable or foreign journal is
        ignored (the work is redone)."""
        try:
            doc = json.loads(self.path.read_text())
            if (doc["checkpoint_sha"] != self.sha or float(doc["fault_rate"]) != float(self.rate)
                    or (doc.get("bn", LEGACY_BN), int(doc.get("calib_images", 0)), doc.get("fault_model", "sa1"))
                    != (self.bn, self.calib_images, self.fault_model)):
                return [], 0.0
            return [float(a) for a in doc["accuracies"]], float(doc.get("seconds", 0.0))
        except (OSError, ValueError, KeyError, TypeError):
            return [], 0.0
