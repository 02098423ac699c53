"""What the command tests share: running ``deepsphere-gen COMMAND ...`` that must refuse (or end) with a given
status and message, without a traceback."""
from deepsphere_gen.cli import main


def refused(command: str, argv: list, capsys, match: str, rc: int = 2):
    """Run ``deepsphere-gen command *argv``; assert exit status ``rc``, ``match`` in what it printed (stderr and
    stdout, with anything captured before and not read yet) and no traceback or torch-load warning; return the
    capture (``.out``, ``.err``)."""
    got = main([command, *argv])
    cap = capsys.readouterr()
    assert got == rc, cap.err
    assert match in cap.err + cap.out, cap.err + cap.out
    assert "Traceback" not in cap.err and "weights_only" not in cap.err
    return cap
