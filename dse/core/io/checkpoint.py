"""Checkpoints: safetensors tensors (never pickle) plus JSON metadata, checked on load.

Layout of one file:
- `model/<key>`: the plain state dict (no parametrization names);
- `bn/<rate>/<bn module>.<buffer>`: BatchNorm statistics calibrated for fault rate <rate>;
- `scale/<key>`: for a weight stored as its 8-bit crossbar levels (int8 `model/<key>`), the per-output-channel
  scale; the weight is levels x scale, which re-quantises to the same levels (what every evaluation uses);
- `optim/...`: optimizer state (and `optim/rng.*`, random-generator states), only in a training run's
  `.partial` resume file;
- metadata `dse`: JSON (network, width, shortcut kernel, mapping, drop-connect rate, seed, recipe,
  dataset fingerprint, accuracy, calibration, library versions, ...) and `sha256`: a digest of every
  tensor's name, dtype, shape and bytes, so a bit flip anywhere is caught, not just a broken header.
Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import hashlib
import json
import platform
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from dse import __version__
from dse.core.crossbar.mapping import MappingPolicy
from dse.core.crossbar.quantize import quantize
from dse.core.errors import DSEError
from dse.core.faults.dropconnect import check_rate
from dse.core.io.atomic import atomic_write
from dse.core.models import build_model, check_network, check_width, shortcut_kernels

FORMAT = "rram-dse-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("network", "width", "shortcut_kernel", "mapping", "dropconnect", "seed")


@dataclass
class Checkpoint:
    meta: dict
    state: dict[str, Tensor]  # model state dict, plain keys
    bn_stats: dict[float, dict[str, Tensor]] = field(default_factory=dict)  # rate -> BN buffers
    extra: dict[str, Tensor] = field(default_factory=dict)  # e.g. optimizer state of a partial file
    path: str = ""
    sha256: str = ""  # digest of every tensor: identifies exactly these weights

    def build_model(self) -> nn.Module:
        """The network of this checkpoint with its weights loaded (strict: every key and shape must match)."""
        m = self.meta
        model = build_model(m["network"], m["width"], m["shortcut_kernel"])
        expected = model.state_dict()
        check_weights(self.state, expected, m, self.path)
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in self.state.items()})
        return model


def check_weights(state: dict[str, Tensor], expected: dict[str, Tensor], meta: dict, path: str) -> None:
    """Every tensor the declared network needs, with its shape: a file that passes its digest can still hold
    another network's weights (a buggy export, a renamed file)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DSEError(f"{path}: weights do not match {meta['network']} width {meta['width']} "
                       f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, t in state.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise DSEError(f"{path}: tensor {k} has shape {tuple(t.shape)}, "
                           f"{meta['network']} width {meta['width']} needs {tuple(expected[k].shape)}")


def library_versions() -> dict[str, str]:
    import torchvision

    return {"dse": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def _rate_key(rate: float) -> str:
    return f"{float(rate):g}"


def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    state: dict[str, Tensor],
    meta: dict,
    bn_stats: dict[float, dict[str, Tensor]] | None = None,
    *,
    extra: dict[str, Tensor] | None = None,
    half: bool = False,
    int8: tuple[str, ...] = (),
) -> None:
    """Write atomically. half=True stores weights and biases as fp16 (half the size; BN stays fp32); the
    weights named in `int8` (the crossbar layers') as their 8-bit levels and per-channel scales (a quarter)."""
    from safetensors.torch import save

    def cpu(k: str, t: Tensor) -> Tensor:
        t = t.detach().cpu().contiguous()
        if half and t.is_floating_point() and k.endswith((".weight", ".bias")) and "running" not in k:
            t = t.half()
        return t

    tensors = {f"model/{k}": cpu(k, v) for k, v in state.items() if k not in int8}
    for k in int8:
        levels, scale = quantize(state[k].detach().cpu())
        tensors[f"model/{k}"] = levels.to(torch.int8).contiguous()
        tensors[f"scale/{k}"] = scale.contiguous()
    for rate, stats in (bn_stats or {}).items():
        tensors.update({f"bn/{_rate_key(rate)}/{k}": v.detach().cpu().contiguous() for k, v in stats.items()})
    tensors.update({f"optim/{k}": v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": "float16" if half else "float32",
            "calibrated_rates": sorted(float(r) for r in (bn_stats or {}))}
    if int8:
        meta["int8_layers"] = sorted(int8)
    text = json.dumps(meta, sort_keys=True)
    metadata = {"dse": text, "sha256": _digest(tensors), "meta_sha256": hashlib.sha256(text.encode()).hexdigest()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save(tensors, metadata=metadata))


def _read_metadata(data: bytes, path: str) -> dict:
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else None
    # a safetensors header length can begin with byte 0x80 too: only a file that is not one is a pickle
    safetensors = n is not None and n <= len(data) - 8 and data[8:9] == b"{"
    if not safetensors and (data[:1] == b"\x80" or data[:2] == b"PK"):
        raise DSEError(f"{path} looks like a pickle/torch.save file; rram-dse only loads safetensors checkpoints")
    if n is None:
        raise DSEError(f"{path} is empty or truncated ({len(data)} bytes); not a safetensors checkpoint")
    if data[8:9] != b"{":  # every safetensors header is a JSON object
        raise DSEError(f"{path} is not a safetensors checkpoint (no safetensors header at its start)")
    if n > len(data) - 8 or n > 100_000_000:
        raise DSEError(f"{path} is truncated: its header declares {n} bytes, the file holds {len(data)}")
    try:
        header = json.loads(data[8 : 8 + n])
        meta = header.get("__metadata__") or {}
        return {"dse": json.loads(meta["dse"]), "sha256": meta["sha256"], "meta_sha256": meta.get("meta_sha256"),
                "meta_text": meta["dse"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DSEError(f"{path} is not an rram-dse checkpoint (missing or unreadable metadata)") from None


def check_meta(meta: dict, path: str) -> dict:
    """Each field a checkpoint must have, with a value the project can build."""
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise DSEError(f"{path}: unsupported checkpoint format {meta.get('format')!r} v{meta.get('format_version')!r}")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise DSEError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
    try:
        check_network(meta["network"])
        check_width(meta["width"])
        if meta["shortcut_kernel"] not in shortcut_kernels(meta["network"]):
            raise DSEError(f"shortcut kernel {meta['shortcut_kernel']!r} invalid for {meta['network']}")
        MappingPolicy.parse(meta["mapping"])
        check_rate(meta["dropconnect"])
    except DSEError as e:
        raise DSEError(f"{path}: bad metadata: {e}") from None
    return meta


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read, verify (format, metadata, digest) and split a checkpoint; any damage is a DSEError."""
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DSEError(f"checkpoint {path} does not exist") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise DSEError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    header = _read_metadata(data, str(path))
    try:
        tensors = load(data)
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise DSEError(f"{path} is damaged: {str(e).splitlines()[0]}") from None
    if _digest(tensors) != header["sha256"]:
        raise DSEError(f"{path} is corrupted: its tensors do not match the recorded sha256")
    meta = check_meta(header["dse"], str(path))
    ckpt = Checkpoint(meta=meta, state={}, path=str(path), sha256=header["sha256"])
    scales: dict[str, Tensor] = {}
    for k, t in tensors.items():
        kind, _, rest = k.partition("/")
        if kind == "model":
            ckpt.state[rest] = t
        elif kind == "bn":
            rate, _, name = rest.partition("/")
            ckpt.bn_stats.setdefault(float(rate), {})[name] = t
        elif kind == "optim":
            ckpt.extra[rest] = t
        elif kind == "scale":
            scales[rest] = t
    for k, scale in scales.items():  # 8-bit levels back to weights: levels x scale
        if k not in ckpt.state or ckpt.state[k].dtype != torch.int8 or scale.dim() != ckpt.state[k].dim():
            raise DSEError(f"{path}: the scale of {k!r} has no 8-bit weight of matching rank")
        ckpt.state[k] = ckpt.state[k].float() * scale
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = build_model(meta["network"], meta["width"], meta["shortcut_kernel"]).state_dict()
    check_weights(ckpt.state, expected, meta, str(path))
    # files written before the metadata digest existed have none: their metadata is checked above only
    if header["meta_sha256"] is not None and \
            hashlib.sha256(header["meta_text"].encode()).hexdigest() != header["meta_sha256"]:
        raise DSEError(f"{path} was tampered with: its metadata does not match the recorded metadata digest")
    return ckpt


def bn_buffers(model: nn.Module) -> dict[str, Tensor]:
    """Running statistics of every BatchNorm layer, cloned."""
    return {
        f"{name}.{buf}": getattr(m, buf).detach().clone()
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for buf in ("running_mean", "running_var", "num_batches_tracked")
    }


def load_bn_buffers(model: nn.Module, stats: dict[str, Tensor]) -> None:
    """Copy BN statistics into the model's buffers in place (no model copy)."""
    modules = dict(model.named_modules())
    for key, value in stats.items():
        name, _, buf = key.rpartition(".")
        getattr(modules[name], buf).copy_(value)


def storage_of(meta: dict) -> dict:
    """save_checkpoint's storage arguments for a checkpoint of this metadata (to write it again alike)."""
    return {"half": meta.get("dtype") == "float16", "int8": tuple(meta.get("int8_layers", ()))}
