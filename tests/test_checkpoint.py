import json
import struct

import pytest
import torch

from dse.core.errors import DSEError
from dse.core.evaluation.calibrate import calibrate_bn
from dse.core.io.checkpoint import load_checkpoint, save_checkpoint
from dse.core.models import build_model

META = {"network": "resnet20", "width": 1.0, "shortcut_kernel": 1, "mapping": "default",
        "dropconnect": 0.3, "seed": 0, "test_accuracy": 12.5}


@pytest.fixture()
def ckpt_path(tmp_path, tiny_data):
    torch.manual_seed(0)
    m = build_model("resnet20").eval()
    stats = calibrate_bn(m, tiny_data.train_x, [0.0, 0.1], max_images=64, progress=False)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, m.state_dict(), META, stats)
    return path, m, stats


def test_round_trip(ckpt_path):
    path, m, stats = ckpt_path
    ck = load_checkpoint(path)
    assert {k: ck.meta[k] for k in META} == META
    assert ck.meta["calibrated_rates"] == [0.0, 0.1]
    model = ck.build_model()
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(ck.bn_stats[0.1][k], v) for k, v in stats[0.1].items())


def test_half_storage_is_smaller_and_close(tmp_path, ckpt_path):
    path, m, stats = ckpt_path
    half = tmp_path / "h.safetensors"
    save_checkpoint(half, m.state_dict(), META, stats, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    model = load_checkpoint(half).build_model()
    assert torch.allclose(model.conv1.weight, m.conv1.weight, atol=1e-3)
    assert model.conv1.weight.dtype == torch.float32


def _rewrite(path, fn):
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(fn(data)))


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: d[: len(d) // 2], "damaged|truncated"),
        (lambda d: d[:4], "empty or truncated"),
        (lambda d: b"", "empty or truncated"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 0x01]), "corrupted"),
        (lambda d: b"hello world, not a checkpoint at all", r"not a safetensors checkpoint \(no safetensors header"),
        (lambda d: d[:20], r"truncated: its header declares \d+ bytes, the file holds 20"),
    ],
)
def test_damaged_files_are_refused(ckpt_path, damage, match):
    path = ckpt_path[0]
    _rewrite(path, damage)
    with pytest.raises(DSEError, match=match):
        load_checkpoint(path)


def test_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(2)}, path)
    with pytest.raises(DSEError, match="pickle"):
        load_checkpoint(path)


def _tamper_meta(path, **changes):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["dse"])
    meta.update(changes)
    header["__metadata__"]["dse"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])


def test_shape_mismatch_is_refused(ckpt_path):
    path = ckpt_path[0]
    _tamper_meta(path, width=1.2)
    with pytest.raises(DSEError, match="shape|do not match"):
        load_checkpoint(path).build_model()


@pytest.mark.parametrize("change, match", [
    (dict(network="resnet56"), "unknown network"),
    (dict(dropconnect=1.5), "drop-connect rate"),
    (dict(mapping="bogus"), "mapping policy"),
    (dict(format_version=99), "unsupported checkpoint format"),
])
def test_tampered_metadata_is_refused(ckpt_path, change, match):
    path = ckpt_path[0]
    _tamper_meta(path, **change)
    with pytest.raises(DSEError, match=match):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(DSEError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_int8_storage_holds_the_crossbar_levels_exactly(tmp_path):
    """Crossbar weights stored as 8-bit levels + per-channel scales load back as weights that re-quantise to
    exactly those levels (what every evaluation computes), in about a quarter of the fp32 bytes."""
    from dse.core.crossbar.mapping import crossbar_layers
    from dse.core.crossbar.quantize import quantize
    from dse.core.io.checkpoint import storage_of
    from dse.core.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet20", 1.0, 1)
    keys = tuple(f"{n}.weight" for n in crossbar_layers(model, "default"))
    meta = {"network": "resnet20", "width": 1.0, "shortcut_kernel": 1, "mapping": "default", "dropconnect": 0.0,
            "seed": 0}
    save_checkpoint(tmp_path / "f.safetensors", model.state_dict(), meta)
    save_checkpoint(tmp_path / "q.safetensors", model.state_dict(), meta, half=True, int8=keys)
    ck = load_checkpoint(tmp_path / "q.safetensors")
    assert storage_of(ck.meta) == {"half": True, "int8": tuple(sorted(keys))}
    state = model.state_dict()
    for k in keys:
        want, _ = quantize(state[k])
        got, _ = quantize(ck.state[k])
        assert torch.equal(want, got), k
        assert ck.state[k].dtype == torch.float32
    assert (tmp_path / "q.safetensors").stat().st_size < 0.3 * (tmp_path / "f.safetensors").stat().st_size
    ck.build_model()  # the declared network takes the dequantised weights

