"""The one line a command ends early with, and its exit status: an error in its options or inputs
(:func:`fail`, status 2, argparse's format) or a Ctrl-C (:func:`report_interrupt`, status 130)."""
from __future__ import annotations

import sys

#: exit status of an error in the options or inputs, as argparse exits with
EXIT_USAGE = 2
#: exit status after Ctrl-C (128 + SIGINT), as a shell reports it
EXIT_INTERRUPTED = 130

#: what is kept when Ctrl-C lands in each stage of a generate/train/evaluate command
_KEPT = {"data generation": "nothing of the unfinished data set is kept",
         "training": "finished {units} are checkpointed",
         "evaluation": "all trained networks are checkpointed"}


def fail(command: str, msg: str) -> int:
    """Print ``deepsphere-gen command: error: msg`` to stderr (argparse's format) and return :data:`EXIT_USAGE`."""
    print(f"deepsphere-gen {command}: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def report_interrupt(command: str, stage: str, exc: KeyboardInterrupt, units: str) -> int:
    """Print to stderr how ``deepsphere-gen command`` was interrupted and that rerunning resumes; return
    :data:`EXIT_INTERRUPTED`.  ``exc``: the interrupt (a :class:`~deepsphere_gen.training.TrainingInterrupted`
    names the epoch last checkpointed and the run); ``stage``: what was running; ``units``: what the
    command checkpoints one by one ("runs", "networks")."""
    if getattr(exc, "epoch", None) is not None:  # TrainingInterrupted (duck-typed: no torch import here)
        what = f"after epoch {exc.epoch} of {exc.epochs} of {exc.desc} (checkpointed with every finished {units[:-1]})"
    else:
        what = f"during {stage} ({_KEPT.get(stage, 'nothing was started').format(units=units)})"
    again = "generate the data set again" if stage == "data generation" else "resume"
    print(f"deepsphere-gen {command}: interrupted {what}; rerun the same command to {again}", file=sys.stderr)
    return EXIT_INTERRUPTED
