"""Sub-commands of ``deepsphere-gen`` (the top layer, with :mod:`deepsphere_gen.cli`).

One module per sub-command, each with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit code``: :mod:`.massmaps`, :mod:`.digits`, :mod:`.equivariance`,
:mod:`.bench`, :mod:`.demo`.  They parse options and call :mod:`deepsphere_gen.experiments`,
imported inside ``run`` so that ``deepsphere-gen --help`` stays fast.
"""
