"""infocam.device: the one device parameter and mixed precision."""

import pytest
import torch

from infocam.device import DeviceError, autocast, check_precision, resolve_device


def test_auto_is_cpu_without_accelerators():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type in ("cpu", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(DeviceError, match="has none"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="has none"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("bad", ["gpu0", "", None, 3, "tpu"])
def test_unknown_device_names_are_refused(bad):
    with pytest.raises(DeviceError):
        resolve_device(bad)


def test_precision_checked_and_fp32_is_a_no_op():
    cpu = torch.device("cpu")
    with pytest.raises(DeviceError, match="needs a GPU"):
        check_precision("fp16", cpu)
    with pytest.raises(DeviceError, match="precision must be"):
        check_precision("half", cpu)
    x = torch.randn(4, 4)
    with autocast(cpu, "fp32"):
        assert (x @ x).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (x @ x).dtype == torch.bfloat16
