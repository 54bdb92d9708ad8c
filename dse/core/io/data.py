"""CIFAR-10 as uint8 tensors held in memory, from any of three sources, decoded once and cached.

Sources (`--data PATH` or the DSE_DATA environment variable):
- the original CIFAR-10 batches (`cifar-10-batches-py`, read with a restricted unpickler that only
  builds plain numpy arrays, or the pickle-free `cifar-10-batches-bin`), downloadable via torchvision;
- an image-folder tree `train/<class>/*` and `test/<class>/*` (classes in alphabetical order);
- a `.tar.gz` of such a tree, read in memory without extracting anything.
The decoded tensors are cached as safetensors under DSE_CACHE (default ~/.cache/dse), keyed by the
source's checksum, so a second load takes well under a second.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dse.core.errors import DSEError
from dse.core.io.atomic import atomic_write
from dse.core.io.paths import default_data_path  # noqa: F401  (re-exported: the CLI asks data for its default)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# per-channel statistics of the CIFAR-10 training set, for normalisation
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
CACHE_VERSION = "1"


@dataclass
class Cifar10:
    """Images as uint8 N x 3 x 32 x 32, labels as int64 N."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: str  # what was read
    fingerprint: str  # sha256 (16 hex) of the decoded tensors: identifies the data whatever the source format




def cache_dir() -> Path:
    return Path(os.environ.get("DSE_CACHE", Path.home() / ".cache" / "dse"))


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(_sha256_file(p).encode())
    return h.hexdigest()


def fingerprint(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------- decoding
def _decode_image(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # PIL raises many types for bad files
        raise DSEError(f"cannot decode image {name}: {e}") from None
    if arr.shape != (32, 32, 3):
        raise DSEError(f"image {name} is {arr.shape[1]}x{arr.shape[0]}; CIFAR-10 images must be 32x32")
    return arr


def _split_of(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """('x', 'train', 'cat', '1.jpg') -> ('train', 'cat'); None when not an image of the tree."""
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
        return None
    split, cls = parts[-3], parts[-2]
    return (split, cls) if split in ("train", "test") else None


def _stack(items: dict[str, list[tuple[str, str, np.ndarray]]], where: str) -> tuple[Tensor, ...]:
    out = []
    for split in ("train", "test"):
        rows = sorted(items[split], key=lambda r: (r[0], r[1]))
        classes = sorted({r[0] for r in rows})
        if len(classes) != len(CLASSES):
            raise DSEError(
                f"{where}: found {len(classes)} classes under {split}/ ({', '.join(classes) or 'none'}); "
                f"CIFAR-10 needs {len(CLASSES)} class folders under train/ and test/"
            )
        index = {c: i for i, c in enumerate(classes)}
        x = torch.from_numpy(np.stack([r[2] for r in rows])).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([index[r[0]] for r in rows], dtype=torch.int64)
        out += [x, y]
    return tuple(out)


def _read_tree(root: Path) -> tuple[Tensor, ...]:
    items: dict[str, list] = {"train": [], "test": []}
    for p in root.rglob("*"):
        key = _split_of(p.relative_to(root).parts) if p.is_file() else None
        if key:
            items[key[0]].append((key[1], str(p), _decode_image(p.read_bytes(), str(p))))
    return _stack(items, str(root))


def _read_targz(path: Path) -> tuple[Tensor, ...]:
    items: dict[str, list] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # streamed; nothing is written to disk, so member paths cannot escape
                key = _split_of(tuple(Path(member.name).parts)) if member.isfile() else None
                if key:
                    data = tar.extractfile(member).read()
                    items[key[0]].append((key[1], member.name, _decode_image(data, f"{path}:{member.name}")))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DSEError(f"cannot read archive {path}: {e}") from None
    return _stack(items, str(path))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10's python batches hold (dicts, lists, bytes, numpy arrays);
    any other global is refused, so a malicious file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:
        raise DSEError(f"cannot read CIFAR-10 batch {path}: {e}") from None
    return x, y


def _read_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise DSEError(f"CIFAR-10 binary batch {path} has {raw.size} bytes, not a multiple of 3073")
    raw = raw.reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def _read_batches(root: Path) -> tuple[Tensor, ...]:
    if (root / "data_batch_1.bin").exists():
        names, reader = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"], _read_bin_batch
    else:
        names, reader = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], _read_py_batch
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DSEError(f"{root}: missing CIFAR-10 batch files {', '.join(missing)}")
    parts = [reader(root / n) for n in names]
    tx = torch.from_numpy(np.concatenate([p[0] for p in parts[:5]]))
    ty = torch.from_numpy(np.concatenate([p[1] for p in parts[:5]]))
    return tx, ty, torch.from_numpy(parts[5][0].copy()), torch.from_numpy(parts[5][1].copy())


def _batches_dir(path: Path) -> Path | None:
    for cand in (path, path / "cifar-10-batches-py", path / "cifar-10-batches-bin"):
        if (cand / "data_batch_1").exists() or (cand / "data_batch_1.bin").exists():
            return cand
    return None


def _download(root: Path) -> None:
    """Fetch the original python batches with torchvision (needs internet)."""
    try:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", str(root),
            md5="c58f30108f718f92721af3b95e74349a",
        )
    except Exception as e:
        raise DSEError(f"could not download CIFAR-10 to {root}: {e}") from None


# ----------------------------------------------------------------------------------- loading
def load_cifar10(path: str | os.PathLike | None = None, download: bool = False) -> Cifar10:
    """Load CIFAR-10 from `path` (or $DSE_DATA); decode once, then serve from the tensor cache."""
    if path is None:
        path = default_data_path()
    if path is None:
        raise DSEError("no data given: pass --data PATH (CIFAR-10 batches, an image tree or a .tar.gz), set "
                       "DSE_DATA, or put it in ./data (python -m dse train --download --data data)")
    path = Path(path).expanduser()
    if download and _batches_dir(path) is None:
        path.mkdir(parents=True, exist_ok=True)
        _download(path)
    if not path.exists():
        raise DSEError(f"data path {path} does not exist (looked for CIFAR-10 batches, an image tree or a .tar.gz)")

    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DSEError(f"data file {path} is not a .tar.gz of an image tree")
        key, reader = _sha256_file(path), lambda: _read_targz(path)
    elif (bdir := _batches_dir(path)) is not None:
        key, reader = _sha256_tree(bdir), lambda: _read_batches(bdir)
    elif any((path / s).is_dir() for s in ("train", "test")) or any(path.glob("*/train")):
        key, reader = _sha256_tree(path), lambda: _read_tree(path)
    elif len(archives := sorted(path.glob("*.tar.gz")) + sorted(path.glob("*.tgz"))) == 1:
        return load_cifar10(archives[0])  # a folder holding one archive, e.g. data/ with a .tar.gz in it
    else:
        raise DSEError(
            f"no CIFAR-10 found in {path}: expected data_batch_1..5 + test_batch, "
            "train/<class>/ and test/<class>/ image folders, or a .tar.gz of them"
        )

    cache = cache_dir() / f"cifar10-{key[:24]}-v{CACHE_VERSION}.safetensors"
    tensors = _load_cache(cache)
    if tensors is None:
        tensors = reader()
        _save_cache(cache, tensors)
    tx, ty, vx, vy = tensors
    return Cifar10(tx, ty, vx, vy, source=str(path), fingerprint=fingerprint(tx, ty, vx, vy))


_KEYS = ("train_x", "train_y", "test_x", "test_y")


def _load_cache(cache: Path):
    from safetensors.torch import load_file

    if not cache.exists():
        return None
    try:
        d = load_file(cache)
        return tuple(d[k] for k in _KEYS)
    except Exception:  # a damaged cache is simply rebuilt
        return None


def _save_cache(cache: Path, tensors) -> None:
    from safetensors.torch import save

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, save(dict(zip(_KEYS, (t.contiguous() for t in tensors)))))
    except OSError:
        pass  # a read-only cache folder only costs the decode next time


# ----------------------------------------------------------------------------------- batches
def head(x: Tensor, y: Tensor, n: int | None) -> tuple[Tensor, Tensor]:
    """The first n images of the set taken class by class in turn (image k of every class before image k + 1
    of any): the archives list each split sorted by class, so their plain first n would hold one or two
    classes. n None, or at least the set's size, gives the set as it is."""
    if n is None or n >= len(y):
        return x, y
    rank = torch.empty_like(y)  # the position of each image within its class
    for c in y.unique():
        at = (y == c).nonzero().squeeze(1)
        rank[at] = torch.arange(len(at), device=y.device)
    keep = torch.argsort(rank * (int(y.max()) + 1) + y, stable=True)[:n].sort().values  # keep the set's order
    return x[keep], y[keep]


def normalize(x_uint8: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 N x 3 x H x W -> normalised float, channels_last (faster convs on CPU and GPU)."""
    mean = torch.tensor(MEAN, device=x_uint8.device, dtype=dtype).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=x_uint8.device, dtype=dtype).view(1, 3, 1, 1) * 255
    x = (x_uint8.to(dtype) - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def random_crop_flip(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Batch augmentation as tensor ops: random translation by up to `pad` pixels (zero padding, the
    same as RandomCrop(32, padding=pad)) and horizontal flip with probability 1/2."""
    n, c, h, w = x.shape
    gen_dev = generator.device
    shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=gen_dev).to(x.device)
    flip = (torch.rand(n, generator=generator, device=gen_dev) < 0.5).to(x.device)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = shifts[0, :, None] + torch.arange(h, device=x.device)  # n x h
    cols = shifts[1, :, None] + torch.arange(w, device=x.device)  # n x w
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip is reversed column order
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(x: Tensor, generator: torch.Generator, size: int) -> Tensor:
    """Zero a `size` x `size` square at a random centre of each image (DeVries & Taylor 2017; the square may
    run off the edge, as in their code), as one mask over the batch."""
    n, _, h, w = x.shape
    gen_dev = generator.device
    centre = torch.randint(0, max(h, w), (2, n), generator=generator, device=gen_dev).to(x.device)
    lo = centre - size // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_r = (rows >= lo[0, :, None]) & (rows < lo[0, :, None] + size)  # n x h
    in_c = (cols >= lo[1, :, None]) & (cols < lo[1, :, None] + size)  # n x w
    keep = ~(in_r[:, :, None] & in_c[:, None, :])  # n x h x w
    return x * keep[:, None].to(x.dtype)
