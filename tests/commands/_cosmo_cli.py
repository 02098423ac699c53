"""What the ``deepsphere-gen cosmo`` command tests share: a tiny run's options and a one-line-refusal check
(torch's thread count is restored by ``conftest.restore_threads``)."""
from ._cli import refused as cli_refused

#: a tiny cosmo run (seconds): the quick preset with fewer cosmologies, realisations and epochs
TINY = ["--quick", "--n-train", "8", "--n-test", "2", "--n-real", "1", "--n-fiducial", "2", "--epochs", "2",
        "--mlp-epochs", "3", "--no-progress"]


def refused(argv, capsys, match, rc=2):
    """Run ``deepsphere-gen cosmo *argv`` (earlier captured output discarded first): exit status ``rc``, one stderr
    line containing ``match``, no traceback (:func:`._cli.refused`); return that line."""
    capsys.readouterr()
    err = cli_refused("cosmo", argv, capsys, match, rc).err
    assert match in err and len(err.strip().splitlines()) == 1, err
    return err
