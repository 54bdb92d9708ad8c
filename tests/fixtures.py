"""Small stores for the app and store tests: real checkpoint files of untrained tiny-width models and
evaluation rows with made-up accuracies (fixtures for page logic, never quoted as results)."""
from __future__ import annotations

from pathlib import Path

import torch

from dse.core.io.checkpoint import load_checkpoint, save_checkpoint
from dse.core.models import build_model
from dse.results.store import DesignPoint, Store

FAULT_RATES = (0.0, 0.1, 0.2, 0.3)


def write_checkpoint(folder: Path, point: DesignPoint, accuracy: float) -> Path:
    torch.manual_seed(0)
    model = build_model(point.network, point.width, point.shortcut_kernel)
    meta = {"network": point.network, "width": point.width, "shortcut_kernel": point.shortcut_kernel,
            "mapping": point.mapping, "dropconnect": point.dropconnect, "seed": 0, "epochs": 1,
            "test_accuracy": accuracy, "complete": True}
    path = folder / f"{point.network}-w{point.width:g}-k{point.shortcut_kernel}-{point.mapping}-p{point.dropconnect:g}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model.state_dict(), meta, {0.0: {}})
    return path


def fake_result(rate: float, mean: float, n: int = 10, bn: str = "paper", calib_images: int = 500) -> dict:
    accs = [mean + 0.1 * ((i % 5) - 2) for i in range(n)] if rate > 0 else [mean]
    from dse.core.evaluation.evaluate import summarize

    return {"fault_rate": rate, "fault_model": "sa1", "protocol": f"fixed({n})", "seed": 0,
            "bn_rate": rate if bn == "paper" else None, "bn": bn, "calib_images": calib_images if bn == "chip" else 0,
            "rescale": True, "test_images": 10000, "accuracies": accs, **summarize(accs), "time_s": 1.0}


def accuracy_model(point: DesignPoint, rate: float, bn: str = "chip") -> float:
    """A made-up, monotone surface: wider and drop-connect-trained points hold up better, and per-chip BN
    statistics lose a third of what the paper's do."""
    base = 90.0 + 2 * (point.width - 1.0)
    loss = 100 * rate * rate * (1.5 - point.dropconnect) / (point.width ** 2)
    return base - (loss / 3 if bn == "chip" else loss)


POINTS = [
    DesignPoint("resnet20", 1.0, 1, "default", 0.0),
    DesignPoint("resnet20", 1.0, 1, "default", 0.3),
    DesignPoint("resnet20", 1.0, 1, "1x1-on-crossbar", 0.3),
    DesignPoint("resnet20", 1.6, 1, "default", 0.3),
]


def build_store(root: Path, points=POINTS, evaluate_missing: tuple = ()) -> tuple[Store, Path]:
    """A store at root/results.sqlite filled from checkpoints in root/checkpoints (with evaluations)."""
    from dse.results.catalog import sync

    ckdir = root / "checkpoints"
    store = Store(root / "results.sqlite")
    for p in points:
        path = write_checkpoint(ckdir, p, accuracy_model(p, 0.0))
        sha = load_checkpoint(path).sha256
        store.add_checkpoint(path)
        if p in evaluate_missing:
            continue
        for f in FAULT_RATES:
            for bn in ("paper", "chip"):
                store.add_evaluation(p.point_id, sha, fake_result(f, accuracy_model(p, f, bn), bn=bn),
                                     {"recalibrate": True})
    sync(store, [ckdir])
    return store, ckdir


def checkpoint_and_images(root: Path) -> tuple[str, str]:
    """An untrained ResNet20 0.5x p=0.3 checkpoint and a 3-images-per-class image tree under `root`: enough
    for a command line to run end to end."""
    from tests.test_data import make_tree

    tree = make_tree(root / "data", per_class=3)
    ckpt = write_checkpoint(root / "ck", DesignPoint("resnet20", 0.5, 1, "default", 0.3), 50.0)
    return str(ckpt), str(tree)
