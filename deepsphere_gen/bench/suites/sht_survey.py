"""SHT at survey sizes: the ``sht`` suite's HEALPix records for nside 256, 512 and 1024 with L = 2 nside.

Cases: HEALPix nside 256, 512, 1024, L = 2 nside, float64 and float32, 1 map, and 8 maps in
float64 at nside 256 and 512; each gives ``sht healpix synthesis`` and ``sht healpix analysis``
(iterations 0) records, made by the ``sht`` suite's ``run`` (NESTED maps for us, the SHT's
default; ducc0 and healpy on RING maps, the reorder not timed for them; best of interleaved
rounds, see that suite).  A quick run has no case (the ``sht`` suite's quick set is the CI-sized
one); run it with ``OMP_NUM_THREADS=1 deepsphere-gen bench --only sht_survey --threads 1 --json PATH``.
"""
from __future__ import annotations

from deepsphere_gen.bench.suites.sht import healpix_cases, run

__all__ = ["NAME", "cases", "run"]

NAME = "sht_survey"


def cases(quick: bool) -> list[dict]:
    """See the module docstring (none when ``quick``)."""
    if quick:
        return []
    return healpix_cases([(nside, 2 * nside) for nside in (256, 512, 1024)], 512)
