"""Sub-commands of ``deepsphere-gen`` (the top layer, with :mod:`deepsphere_gen.cli`).

One module per sub-command, each with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit code``: :mod:`.massmaps`, :mod:`.cosmo`, :mod:`.digits`, :mod:`.equivariance`,
:mod:`.bench`, :mod:`.demo`.  They parse and check options, call
:mod:`deepsphere_gen.experiments` (or the bench harness) and print or write the results.
What they share:

| module | holds |
| --- | --- |
| :mod:`._preflight` | checks before any work: device, folders, output files, free disk (``check_step_paths``: those of a generate/train/evaluate/run step) |
| :mod:`._argv` | command-line words reordered before parsing (a step or a FITS file after a list option's values); ``option``: an option parsed with ``default=SUPPRESS``, or its default |
| :mod:`._exits` | the one line a command ends early with: an error in its options or inputs (`fail`, exit status 2), a full disk during the run (`report_os_error`, 2) or a Ctrl-C (`report_interrupt`, 130; SIGTERM 143 under `TerminationAsInterrupt`) |
| :mod:`._quick` | the note under a ``--quick`` run's table (`quick_note`: a smoke test, naming what the table holds) |

And the parts of :mod:`.massmaps` (which keeps its options, the config built from them and the steps run):

| module | holds |
| --- | --- |
| :mod:`._massmaps_checks` | a run's config checked before any work: options that would do nothing, methods vs sky fractions, resolutions, --k, footprint pooling notes, folders and free disk (`preflight`) |
| :mod:`._massmaps_classify` | `massmaps classify`: its option refusals, the networks chosen, the exit status of out-of-distribution inputs |
"""
