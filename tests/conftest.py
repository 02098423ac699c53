"""Shared fixtures."""
import signal

import pytest
import torch

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # started in the background by a non-interactive shell (`pytest &`), which ignores SIGINT and passes the
    # ignore on to every child: the Ctrl-C tests (in this process and in the commands they start) need
    # Python's default handler, which a child then gets again (a handled signal is reset at exec)
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
