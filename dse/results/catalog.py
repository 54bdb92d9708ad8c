"""Filling the results store from checkpoint folders: every `*.safetensors` checkpoint becomes a design
point, and a folder's `manifest.json` (written by `python -m dse manifest`) brings its evaluations,
so shipped results need no re-evaluation. Costs of every known design point are computed here too."""
from __future__ import annotations

import json
import os
from pathlib import Path

from dse.core.cost.isaac import COST_VERSION
from dse.core.errors import DSEError
from dse.core.io.atomic import atomic_write
from dse.results.store import DesignPoint, Store, file_stamp

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "rram-dse-manifest"
COST_MODELS = ("paper", "isaac")


def default_checkpoint_dirs() -> list[Path]:
    """Shipped checkpoints, then the user's own runs (DSE_CHECKPOINTS, a path list, overrides both)."""
    env = os.environ.get("DSE_CHECKPOINTS")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path("checkpoints"), Path("runs") / "checkpoints"]


def sync(store: Store, dirs: list[Path] | None = None) -> dict:
    """Register every checkpoint in `dirs` and import their manifests; a damaged file is reported,
    never fatal. Returns {"points": n, "evaluations": n, "problems": [one line per bad file]}."""
    dirs = default_checkpoint_dirs() if dirs is None else dirs
    report = {"points": 0, "evaluations": 0, "problems": []}
    shas: dict[str, tuple[str, str]] = {}  # checkpoint sha256 -> (point id, path)
    known = {r.checkpoint: r for r in store.points().itertuples() if isinstance(r.checkpoint, str)}
    for d in dirs:
        for path in sorted(Path(d).glob("*.safetensors")):
            try:
                row = known.get(str(path))
                if row is not None and row.file_stamp == file_stamp(path):
                    pid, sha = row.point_id, row.checkpoint_sha  # unchanged since it was read and verified
                else:
                    pid, sha = store.add_checkpoint(path)
                shas[sha] = (pid, str(path))
                report["points"] += 1
            except DSEError as e:
                report["problems"].append(str(e))
        manifest = Path(d) / MANIFEST
        if manifest.exists():
            try:
                report["evaluations"] += import_manifest(store, manifest, shas)
            except DSEError as e:
                report["problems"].append(str(e))
    ensure_costs(store)
    return report


def import_manifest(store: Store, path: Path, shas: dict[str, tuple[str, str]]) -> int:
    """Evaluations recorded in a manifest, for the checkpoints whose weights match (by sha256)."""
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != MANIFEST_FORMAT:
            raise ValueError("not an rram-dse manifest")
        entries = doc["checkpoints"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DSEError(f"{path}: unreadable manifest ({e})") from None
    n = 0
    for entry in entries:
        sha = entry.get("sha256")
        if sha not in shas:
            continue  # a manifest row for a checkpoint that is absent or was retrained
        pid, _ = shas[sha]
        for ev in entry.get("evaluations", []):
            store.add_evaluation(pid, sha, ev, ev.get("protocol_config", {}), ev.get("fault_free_quantized_accuracy"))
            n += 1
    return n


_EVAL_FIELDS = ("fault_rate", "fault_model", "protocol", "bn", "calib_images", "seed", "bn_rate", "rescale", "test_images", "n", "mean",
                "std", "ci95", "ci_low", "ci_high", "p5", "worst", "best", "time_s")


def write_manifest(store: Store, folder: Path, data: str | os.PathLike | None = None) -> dict:
    """Write `<folder>/manifest.json` (atomically): every checkpoint in the folder with its metadata and
    all its evaluations in the store, per-instance accuracies included, so that `sync` on another machine
    has the results without evaluating again. With `data` (CIFAR-10), each checkpoint also gets a spot
    check (dse.core.evaluation.evaluate.spot_check), kept from the old manifest while its weights are unchanged.
    Returns {"path", "checkpoints", "evaluations"}."""
    from dse.core.io.checkpoint import load_checkpoint

    folder = Path(folder)
    # the whole key, smallest protocol first: a stable order keeps the manifest's diffs to what changed
    evals = store.evaluation_rows(order="key")
    old = _old_spot_checks(folder / MANIFEST)
    cifar = None
    entries, n = [], 0
    for path in sorted(folder.glob("*.safetensors")):
        try:
            ck = load_checkpoint(path)
        except DSEError:
            continue  # a damaged file is sync's to report; the manifest lists what loads
        m = ck.meta
        rows = []
        for r in evals[evals.checkpoint_sha == ck.sha256].itertuples():
            ev = {k: _plain(getattr(r, k)) for k in _EVAL_FIELDS}
            ev.update(accuracies=json.loads(r.accuracies), fault_free_quantized_accuracy=_plain(r.quantized_accuracy),
                      protocol_config={"recalibrate": bool(r.recalibrate)})
            if getattr(r, "precision", None):  # recorded since the store has had the column
                ev["precision"] = r.precision
            rows.append(ev)
        n += len(rows)
        dataset = dict(m.get("dataset") or {})
        if dataset.get("source"):  # a file name, never the builder's path: the fingerprint identifies the data
            dataset["source"] = Path(str(dataset["source"])).name
        entries.append({
            "file": path.name, "sha256": ck.sha256, "bytes": path.stat().st_size,
            **{k: m.get(k) for k in ("network", "width", "shortcut_kernel", "mapping", "dropconnect", "seed", "epochs",
                                     "recipe", "init", "test_accuracy", "test_accuracy_trained_bn", "train_time_s",
                                     "calibration", "dtype", "versions", "device")},
            "dataset": dataset,
            "evaluations": rows})
        spot = old.get(ck.sha256)
        if spot is None and data is not None:
            from dse.core.evaluation.evaluate import spot_check
            from dse.core.io.data import load_cifar10

            cifar = cifar or load_cifar10(data)
            spot = spot_check(ck, cifar.test_x, cifar.test_y)
        if spot is not None:
            entries[-1]["spot_check"] = spot
    doc = {"format": MANIFEST_FORMAT, "format_version": 1, "checkpoints": entries}
    out = folder / MANIFEST
    atomic_write(out, (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode())
    return {"path": str(out), "checkpoints": len(entries), "evaluations": n}


def _old_spot_checks(path: Path) -> dict[str, dict]:
    try:
        doc = json.loads(path.read_text())
        return {e["sha256"]: e["spot_check"] for e in doc["checkpoints"] if "spot_check" in e}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _plain(v):
    """A JSON-ready scalar from a pandas cell (numpy types, NaN -> None)."""
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def ensure_costs(store: Store, points: list[DesignPoint] | None = None) -> None:
    """Both cost models for every design point in the store (or those given) that lacks them, or has them
    from another cost-model version (COST_VERSION: the cost model changed since, so they are recomputed)."""
    if points is None:
        df = store.points()
        points = [DesignPoint(r.network, r.width, int(r.shortcut_kernel), r.mapping, r.dropconnect)
                  for r in df.itertuples()]
    have = {(r.network, round(r.width, 4), int(r.shortcut_kernel), r.mapping, r.cost_model)
            for r in store.costs().itertuples() if r.version == COST_VERSION}
    for p in points:
        for model in COST_MODELS:
            key = (p.network, round(p.width, 4), p.shortcut_kernel, p.mapping, model)
            if key not in have:
                from dse.core.cost.per_image import estimate  # torch: only when a cost is actually missing

                est = estimate(p.network, p.width, p.shortcut_kernel, p.mapping, model)
                store.add_cost(p.network, p.width, p.shortcut_kernel, p.mapping, model, est)
                have.add(key)  # once per architecture, not once per drop-connect rate
