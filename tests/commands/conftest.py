"""Shared by the command tests: torch's thread count restored after each test (the commands set it)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
