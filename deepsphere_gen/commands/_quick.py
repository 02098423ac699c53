"""The note a command prints under its table after a ``--quick`` run (:func:`quick_note`): the run was a smoke test."""
from __future__ import annotations

__all__ = ["quick_note"]


def quick_note(results) -> str:
    """The ``--quick`` note naming what the table holds, ``results`` (e.g. ``("accuracies", "margins")``): "(--quick:
    a smoke test of the pipeline on CI-sized data and training, no science: its accuracies and margins say only that
    the steps ran; the experiment is the run without --quick)"."""
    *first, last = results
    named = f"{', '.join(first)} and {last}" if first else last
    return (f"(--quick: a smoke test of the pipeline on CI-sized data and training, no science: its {named} say only "
            "that the steps ran; the experiment is the run without --quick)")
