"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def device(request) -> torch.device:
    """The device a test runs on: always "cpu", and "cuda" where CUDA is available."""
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """One torch CPU thread for the test, the count restored after: small problems gain nothing
    from a thread team, whose every parallel call waits for its members on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
