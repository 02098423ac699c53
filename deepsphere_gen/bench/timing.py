"""What ``ours_s`` / ``peer_s`` report in each suite: one table, torch-free (the ``bench`` command's
``--help`` reads it), from which the ``--repeats`` help and the JSON's ``meta.timing`` are written."""
from __future__ import annotations

#: the harness's figure (:meth:`deepsphere_gen.bench.Harness.time`), the one most suites report
MEDIAN = "the median of the timed calls after the warm-up calls"

_ROUNDS = "the best of interleaved rounds (medians in *_median_s)"

#: suite -> what its ``ours_s`` / ``peer_s`` are (every suite: the installed ones and the
#: development suites of ``benchmarks/suites``; a test checks that none is missing)
REPORTED = {
    "chebconv": MEDIAN,
    # disco and filtering time their own loops, not bench.peers.paired's (best of at most --repeats rounds,
    # stopped after 4 s): their records are medians of these budgets
    "disco": "the median CPU time of calls after 1 warm-up call, timed until 10 s are spent (at least 2), ours then the peer",
    "efficient_layer": MEDIAN,
    "filtering": "the median CPU time of interleaved rounds after 1 warm-up call each, timed until 60 s are spent "
                 "(at least 3 rounds)",
    "tensor_product": MEDIAN,
    "sht": _ROUNDS,
    "sht_survey": _ROUNDS,  # the sht suite's run at survey sizes
    "cheb_step": _ROUNDS,
    "graph_build": "one call in a fresh process",
    "graph_cached_build": "the fastest of 2 calls, each in a fresh process",
    "memory_scale": "one call",
}


def _exceptions() -> str:
    return "; ".join(f"{suite}: {what}" for suite, what in REPORTED.items() if what != MEDIAN)


#: the ``--repeats`` help's account of the figures
REPEATS_HELP = f"median reported, except {_exceptions()}"

#: ``meta.timing`` of a run's JSON
TIMING = f"{MEDIAN}, except where a record's extras.timing or its suite says otherwise ({_exceptions()})"
