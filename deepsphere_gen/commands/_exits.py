"""The one line a command ends early with, and its exit status: an error in its options or inputs
(:func:`fail`, status 2, argparse's format), a file-system error such as a full disk during the run
(:func:`report_os_error`, status 2) or a Ctrl-C (:func:`report_interrupt`, status 130), or SIGTERM while
:class:`TerminationAsInterrupt` is installed (status 143)."""
from __future__ import annotations

import signal
import sys
import threading

from .._io import handler_replaceable

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


def report_os_error(command: str, stage: str, exc: OSError) -> int:
    """Print the file system's own words for ``exc`` (e.g. the disk filled up during the run: "No space left on
    device: FILE"), the stage it happened in and what is kept, as one :func:`fail` line (no traceback); return
    :data:`EXIT_USAGE`.  The checkpoint writes are atomic (:func:`deepsphere_gen._io.atomic_write`, which also
    names the file where torch's writer did not), so the previous checkpoint is intact; an unfinished data set is
    removed (its folder is temporary until complete)."""
    where = f": {exc.filename}" if exc.filename else ""
    kept = _KEPT["data generation"] if stage == "data generation" else "finished checkpoints are kept"
    return fail(command, f"{exc.strerror or exc}{where} (during {stage}; {kept})")


class TerminationAsInterrupt:
    """While installed, SIGTERM (``timeout``, a batch scheduler's time limit, ``kill``) raises ``KeyboardInterrupt``
    as Ctrl-C does, so that a command's long phases end as they end on Ctrl-C: an unfinished data set's temporary
    folder removed, a checkpoint being written completed first (:func:`deepsphere_gen._io.interrupts_deferred`),
    one line (:func:`report_interrupt`, status 143 = 128 + SIGTERM, as a shell reports it) (was: killed at once, no message, the
    temporary folder left behind).  ``signum``: SIGTERM once received, else None.  :meth:`restore` puts the previous
    handler back: library code keeps no process-wide handler.  Installed in the main thread only (the only one that
    receives signals), and not where SIGTERM is ignored or its handler was not set from Python (``signal.getsignal``
    gives None: it could not be put back), the rule of :func:`deepsphere_gen._io.interrupts_deferred`."""

    def __init__(self):
        self.signum = None
        self._previous = None
        self._installed = (threading.current_thread() is threading.main_thread()
                           and handler_replaceable(signal.SIGTERM))
        if self._installed:
            self._previous = signal.signal(signal.SIGTERM, self._raise)

    def _raise(self, signum, frame):
        self.signum = signum
        raise KeyboardInterrupt

    def restore(self) -> None:
        """Put the handler found at construction back; idempotent."""
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False


def report_interrupt(command: str, stage: str, exc: KeyboardInterrupt, units: str, signum: int | None = None) -> int:
    """Print to stderr how ``deepsphere-gen command`` was interrupted and that rerunning resumes; return
    :data:`EXIT_INTERRUPTED` (128 + ``signum`` for a signal other than Ctrl-C's: "terminated (SIGTERM) ...", 143).
    ``exc``: the interrupt (a :class:`~deepsphere_gen.training.TrainingInterrupted`
    names the epoch last checkpointed and the run); ``stage``: what was running; ``units``: what the
    command checkpoints one by one ("runs", "networks"); ``signum``: :attr:`TerminationAsInterrupt.signum`."""
    if getattr(exc, "epoch", None) is not None:  # TrainingInterrupted (duck-typed: no torch import here)
        what = f"after epoch {exc.epoch} of {exc.epochs} of {exc.desc} (checkpointed with every finished {units[:-1]})"
    else:
        what = f"during {stage} ({_KEPT.get(stage, 'nothing was started').format(units=units)})"
    again = "generate the data set again" if stage == "data generation" else "resume"
    how = "interrupted" if signum is None else f"terminated ({signal.Signals(signum).name})"
    print(f"deepsphere-gen {command}: {how} {what}; rerun the same command to {again}", file=sys.stderr)
    return EXIT_INTERRUPTED if signum is None else 128 + signum
