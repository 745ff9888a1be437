import os

import pytest
import torch

from clamp3.precision import autocast_dtype, keep_freed_memory, run_in_float32


def test_dtype_names():
    assert autocast_dtype(None) is None and autocast_dtype("fp32") is None
    assert autocast_dtype(torch.float32) is None
    assert autocast_dtype("bf16") == torch.bfloat16 and autocast_dtype(torch.float16) == torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'int8'; use one of fp32, float32, bf16"):
        autocast_dtype("int8")


def test_a_float32_module_ignores_autocast_and_its_neighbours_do_not():
    torch.manual_seed(0)
    kept, other = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)
    exact = kept(x)
    run_in_float32(kept)
    run_in_float32(kept)  # a second call adds nothing
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_input = other(x)
        assert low_input.dtype == torch.bfloat16
        out = kept(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, exact, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert kept(low_input).dtype == torch.float32  # a bf16 input is widened first


def test_freed_memory_is_kept_on_glibc_and_asking_twice_changes_nothing():
    try:
        glibc = bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        glibc = False
    assert keep_freed_memory() is glibc and keep_freed_memory() is glibc
