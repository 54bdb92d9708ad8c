import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from dse.core.errors import DSEError
from dse.core.io.data import CLASSES, head, load_cifar10, random_crop_flip


def png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_tree(root, per_class=2, classes=CLASSES):
    for split in ("train", "test"):
        for ci, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                (root / split / c / f"{i}.png").write_bytes(png(1000 * ci + i + (0 if split == "train" else 500)))
    return root


def test_image_tree_and_targz_give_the_same_tensors(tmp_path):
    tree = make_tree(tmp_path / "cifar" / "data")
    a = load_cifar10(tmp_path / "cifar")
    assert a.train_x.shape == (20, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.train_y.tolist() == [i // 2 for i in range(20)]  # alphabetical class order
    arc = tmp_path / "c.tar.gz"
    with tarfile.open(arc, "w:gz") as tar:
        tar.add(tree, arcname="cifar10-jpeg")
    b = load_cifar10(arc)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.fingerprint == b.fingerprint
    shelf = tmp_path / "shelf"  # a folder holding one archive (./data with a .tar.gz dropped in) reads as it
    shelf.mkdir()
    arc.rename(shelf / "cifar10-jpeg.tar.gz")
    assert load_cifar10(shelf).fingerprint == a.fingerprint
    img = np.array(Image.open(tree / "train" / "bird" / "1.png"))  # writable: from_numpy warns on read-only
    assert torch.equal(a.train_x[5], torch.from_numpy(img).permute(2, 0, 1))


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    make_tree(tmp_path / "d")
    load_cifar10(tmp_path / "d")
    import dse.core.io.data as data

    monkeypatch.setattr(data, "_read_tree", lambda root: pytest.fail("decoded twice"))
    load_cifar10(tmp_path / "d")


def _write_py_batches(root, n=10):
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        (root / name).write_bytes(pickle.dumps(d))


def test_python_batches(tmp_path):
    _write_py_batches(tmp_path / "cifar-10-batches-py")
    d = load_cifar10(tmp_path)
    assert d.train_x.shape == (50, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)


def test_binary_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.zeros((4, 3073), dtype=np.uint8)
        rec[:, 0] = [1, 2, 3, 4]
        rec.tofile(root / name)
    d = load_cifar10(root)
    assert d.train_y.tolist()[:4] == [1, 2, 3, 4] and d.train_x.shape == (20, 3, 32, 32)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_malicious_pickle_batch_is_refused(tmp_path):
    _write_py_batches(tmp_path / "b")
    (tmp_path / "b" / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DSEError, match="refusing to load builtins.print"):
        load_cifar10(tmp_path / "b")


@pytest.mark.parametrize("setup, match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no CIFAR-10 found"),
    (lambda p: make_tree(p, classes=CLASSES[:3]), "found 3 classes"),
    (lambda p: p.write_text("x"), "not a .tar.gz"),
])
def test_missing_or_malformed_data(tmp_path, setup, match):
    path = tmp_path / "data"
    setup(path)
    with pytest.raises(DSEError, match=match):
        load_cifar10(path)


def test_bad_image_size_is_named(tmp_path):
    make_tree(tmp_path / "d")
    Image.new("RGB", (64, 64)).save(tmp_path / "d" / "train" / "cat" / "0.png")
    with pytest.raises(DSEError, match="0.png is 64x64"):
        load_cifar10(tmp_path / "d")


def test_crop_flip_moves_pixels_within_the_padding():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int32).view(2, 3, 32, 32) % 251 + 1
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, g, pad=4)
    assert out.shape == x.shape
    for i in range(2):  # each output is a shifted (maybe flipped) copy: find it among the 81 x 2 candidates
        xp = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        cands = [c for dy in range(9) for dx in range(9) for c in (xp[:, dy:dy + 32, dx:dx + 32],)]
        cands += [c.flip(2) for c in cands]
        assert any(torch.equal(out[i], c) for c in cands)


def test_a_subset_of_a_class_sorted_set_holds_every_class_equally():
    """The archives list each split sorted by class: N images for a quick run take the classes in turn."""
    y = torch.arange(10).repeat_interleave(7)  # sorted by class, as the shared JPEG copy is
    x = torch.arange(70) * 3
    sub_x, sub_y = head(x, y, 25)
    assert torch.bincount(sub_y, minlength=10).tolist() == [3] * 5 + [2] * 5
    assert torch.equal(sub_x // 3 // 7, sub_y)  # each image keeps its own label
    assert (sub_x.diff() > 0).all()  # the set's own order is kept
    assert head(x, y, None)[0] is x and head(x, y, 70)[1] is y
