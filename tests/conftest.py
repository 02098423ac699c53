"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def device(request) -> torch.device:
    """The device a test runs on: always "cpu", and "cuda" where CUDA is available."""
    return torch.device(request.param)
