"""Filling the results store from checkpoint folders: every `*.safetensors` checkpoint becomes a design
point, and a folder's `manifest.json` (written by `python -m dse manifest`) brings its evaluations,
so shipped results need no re-evaluation. Costs of every known design point are computed here too."""
from __future__ import annotations

import json
import os
from pathlib import Path

from dse.errors import DSEError
from dse.store import DesignPoint, Store

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
                    pid, sha = store.add_checkpoint(path, stamp=file_stamp(path))
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


def file_stamp(path: Path) -> str:
    """Size and modification time: a changed file is read and verified again."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


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


def ensure_costs(store: Store, points: list[DesignPoint] | None = None) -> None:
    """Both cost models for every design point in the store (or those given) that lacks them."""
    if points is None:
        df = store.points()
        points = [DesignPoint(r.network, r.width, int(r.shortcut_kernel), r.mapping, r.dropconnect)
                  for r in df.itertuples()]
    have = {(r.network, round(r.width, 4), int(r.shortcut_kernel), r.mapping, r.cost_model)
            for r in store.costs().itertuples()}
    for p in points:
        for model in COST_MODELS:
            if (p.network, round(p.width, 4), p.shortcut_kernel, p.mapping, model) not in have:
                from dse.cost import estimate  # torch: only when a cost is actually missing

                est = estimate(p.network, p.width, p.shortcut_kernel, p.mapping, model)
                store.add_cost(p.network, p.width, p.shortcut_kernel, p.mapping, model, est)
