import pytest
import torch

from dse.core.errors import DSEError
from dse.core.runtime.device import check_device_name, pick_device


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:1"])
def test_device_names_accepted_without_the_device(name):
    assert check_device_name(name) == name  # a spec written for a GPU machine still reads here


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "CPU", "", 0, None])
def test_bad_device_names_name_the_value_and_the_choices(name):
    with pytest.raises(DSEError, match=r"unknown device .*; use auto, cpu, cuda or cuda:N"):
        check_device_name(name)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DSEError, match="no CUDA GPU is available; use --device cpu"):
            pick_device("cuda:0")
