"""The crossbar journal: an evaluation writes the accuracy of every crossbar instance it finishes beside its
checkpoint (`<checkpoint>.crossbars-<digest>.partial`, atomically), so a killed run resumes where it stopped
and a later run asking more instances of the same EvalSpec (whatever its budget) runs only the new ones
(instance i is the same fault map whatever the instance count). The file is named after the weights' digest
and the spec's key; a journal written before specs had one key carries its fields instead, and is read as such."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dse.core.io.atomic import atomic_write
from dse.domain.bn import LEGACY_BN
from dse.domain.evalspec import EvalSpec


@dataclass(frozen=True)
class Journal:
    checkpoint: str
    sha: str  # the weights' digest: a journal of other weights is ignored
    spec: EvalSpec

    @property
    def path(self) -> Path:
        digest = hashlib.sha256(json.dumps(self._name_key()).encode()).hexdigest()[:16]
        return Path(f"{self.checkpoint}.crossbars-{digest}.partial")

    def _name_key(self) -> list:
        """What the file name hashes: the digest and the spec's key, in the layout journals have always been
        named by (fields at their first defaults left out), so that every journal on disk keeps its name."""
        k = self.spec.identity()
        key = [self.sha, k["fault_rate"], k["seed"], k["test_images"]]
        if k["bn"] != "paper":  # a chip's accuracy depends on the protocol; the paper's journals keep their names
            key += [k["bn"], k["calib_images"]]
        if k["fault_model"] != "sa1":  # likewise: SA1 journals keep their names
            key += [k["fault_model"]]
        if not (k["recalibrate"] and k["rescale"]):  # the ablations, journaled since specs had one key
            key += [{"recalibrate": k["recalibrate"], "rescale": k["rescale"]}]
        return key

    def write(self, accuracies: list[float], seconds: float) -> None:
        doc = {"checkpoint_sha": self.sha, "key": self.spec.key(), "accuracies": list(accuracies),
               "seconds": round(seconds, 3)}
        atomic_write(self.path, json.dumps(doc).encode())

    def read(self) -> tuple[list[float], float]:
        """The crossbars finished earlier and the seconds they took; an unreadable or foreign journal is
        ignored (the work is redone)."""
        try:
            doc = json.loads(self.path.read_text())
            if doc["checkpoint_sha"] != self.sha or not self._same_spec(doc):
                return [], 0.0
            return [float(a) for a in doc["accuracies"]], float(doc.get("seconds", 0.0))
        except (OSError, ValueError, KeyError, TypeError):
            return [], 0.0

    def _same_spec(self, doc: dict) -> bool:
        if "key" in doc:
            return doc["key"] == self.spec.key()
        # a journal written before specs had one key: its fields, as they were recorded
        k = self.spec.identity()
        return (float(doc["fault_rate"]) == k["fault_rate"] and doc.get("bn", LEGACY_BN) == k["bn"]
                and int(doc.get("calib_images", 0)) == k["calib_images"] and doc.get("fault_model", "sa1") == k["fault_model"]
                and k["recalibrate"] and k["rescale"])
