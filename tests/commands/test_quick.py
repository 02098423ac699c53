"""The ``--quick`` note of massmaps and cosmo: one wording (commands._quick.quick_note), naming each its results."""
from deepsphere_gen.commands import cosmo, massmaps
from deepsphere_gen.commands._quick import quick_note


def test_both_commands_note_quick_runs_in_one_wording():
    """The notes (the two texts were near-copies written out twice) say the same but for the results they name."""
    head = "(--quick: a smoke test of the pipeline on CI-sized data and training, no science: its "
    tail = " say only that the steps ran; the experiment is the run without --quick)"
    assert massmaps.QUICK_NOTE == f"{head}accuracies and margins{tail}"
    assert cosmo.QUICK_NOTE == f"{head}errors, coverages, widths and target line{tail}"
    assert quick_note(["losses"]) == f"{head}losses{tail}"
