"""Sub-commands of ``deepsphere-gen`` (the top layer, with :mod:`deepsphere_gen.cli`).

One module per sub-command, each with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit code``: :mod:`.massmaps`, :mod:`.digits`, :mod:`.equivariance`,
:mod:`.bench`, :mod:`.demo`.  They parse and check options, call
:mod:`deepsphere_gen.experiments` (or the bench harness) and print or write the results.
"""
