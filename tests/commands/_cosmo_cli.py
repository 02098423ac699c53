"""What the ``deepsphere-gen cosmo`` command tests share: a tiny run's options, a one-line-refusal check and
a fixture that restores torch's thread count (the command sets it)."""
import pytest
import torch

from ._cli import refused as cli_refused

#: a tiny cosmo run (seconds): the quick preset with fewer cosmologies, realisations and epochs
TINY = ["--quick", "--n-train", "8", "--n-test", "2", "--n-real", "1", "--n-fiducial", "2", "--epochs", "2",
        "--mlp-epochs", "3", "--no-progress"]


@pytest.fixture(autouse=True)
def restore_threads():
    """Autouse in every module that imports it: torch's thread count after the test as before."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def refused(argv, capsys, match, rc=2):
    """Run ``deepsphere-gen cosmo *argv`` (earlier captured output discarded first): exit status ``rc``, one stderr
    line containing ``match``, no traceback (:func:`._cli.refused`); return that line."""
    capsys.readouterr()
    err = cli_refused("cosmo", argv, capsys, match, rc).err
    assert match in err and len(err.strip().splitlines()) == 1, err
    return err
