"""Checks a command runs before any work: device, output and data folders, output files, free disk.

Each raises ``ValueError`` with a one-line message (the commands print it as
``deepsphere-gen COMMAND: error: ...`` and exit 2), so that a wrong ``--device`` or a
read-only ``--out-dir`` is reported in the first second, not after data generation and
a first epoch.
"""
from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

from .._devices import check_device, valid_devices  # re-exported: the commands' device check

__all__ = ["valid_devices", "check_device", "check_writable_dir", "check_output_file", "check_seed", "figure_formats",
           "check_free_space", "check_step_paths", "check_k", "check_footprint_groups", "footprint_pooling_notes"]


def check_writable_dir(path, option: str) -> Path:
    """Create ``path`` (and parents) if needed and check a file can be written in it.

    ``option`` names the setting in messages (``--out-dir``).
    """
    path = Path(path)  # as given: the command writes this path, not a ~-expanded one
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                  errno.EPERM: "operation not permitted", errno.ENOTDIR: "a parent is a file, not a folder",
                  errno.ENOSPC: "no space left on device"}.get(exc.errno, exc.strerror or type(exc).__name__)
        raise ValueError(f"{option} {path} is not a writable folder ({reason})") from None
    return path


def figure_formats() -> list[str]:
    """File suffixes (lower case, no dot) matplotlib's ``savefig`` can write: png, pdf, svg, ..."""
    from matplotlib.backend_bases import FigureCanvasBase  # here: only a --plot needs matplotlib (~0.2 s)

    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_output_file(path, option: str, figure: bool = False) -> Path:
    """Check before any work that a file can be written at ``path``: not a folder, its folder
    created (with parents) if missing and writable (the atomic writes and ``savefig`` need no more).

    ``option`` names the setting in messages (``--json``).  ``figure``: also refuse a suffix
    matplotlib cannot write; a path without one gets ``.png`` (what matplotlib would write).  Returns
    the path to write (the commands write and print that one).
    """
    path = Path(path)  # as given: the command writes this path, not a ~-expanded one
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder, not a file")
    if figure and path.suffix and path.suffix[1:].lower() not in figure_formats():
        raise ValueError(f"{option} {path}: unsupported figure format {path.suffix[1:]!r}; "
                         f"supported: {', '.join(figure_formats())}")
    if figure and not path.suffix:
        path = path.with_name(path.name + ".png")
    check_writable_dir(path.parent, f"the folder of {option}")
    return path


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` if numpy and scikit-learn take it (0 <= seed < 2**32); else ValueError naming ``option``."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"{option} must be >= 0 and < 2**32, got {seed}")
    return seed


def check_free_space(path, need_bytes: int, what: str) -> int:
    """Free bytes on the file system of ``path``; ValueError if fewer than ``need_bytes``."""
    path = Path(path)  # as given: the command writes this path, not a ~-expanded one
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise ValueError(f"not enough free disk space in {path} for {what}: about {need_bytes / 2**20:.0f} MiB "
                         f"needed, {free / 2**20:.0f} MiB free")
    return free


def network_output_bytes(networks) -> int:
    """Disk for a run's checkpoints, JSON and figures (massmaps, cosmo): 16 MiB for figures and JSON, plus per
    network 1 MiB (weights and optimiser state: at ``cosmo --quick`` a graph network's checkpoint is 0.13 MB, an
    MLP's 0.3-0.4 MB) and 256 bytes per input pixel of a graph network (its graph Laplacians kept as buffers,
    measured at massmaps' default settings: 115-220 bytes per pixel for the FCN and the hybrid on the full sky at
    nside 64, 140-260 on 1/48 and 1/192 patches at nside 256).  ``networks``: ``(count, pixels)`` pairs, ``count``
    networks on ``pixels`` input pixels each (0: no graph, an MLP)."""
    return 2**24 + sum(count * (2**20 + 256 * pixels) for count, pixels in networks)


def check_step_paths(device: str | None, data_dir, out_dir, step: str, json_path=None) -> None:
    """The first checks of a step of a generate/train/evaluate/run command (massmaps, cosmo), in this
    order: ``device`` (:func:`check_device`); ``data_dir`` a writable folder (``--data-dir``); ``out_dir``
    one (``--out-dir``) unless the step is ``generate``; for the ``evaluate`` and ``run`` steps
    ``json_path`` a writable file (``--json``; None: the step writes no JSON)."""
    check_device(device)
    check_writable_dir(data_dir, "--data-dir")
    if step != "generate":
        check_writable_dir(out_dir, "--out-dir")
    if json_path is not None and step in ("evaluate", "run"):
        check_output_file(json_path, "--json")


def check_k(k: int, given: bool, inputs: list[tuple[str, int]], remedy: str) -> list[str]:
    """``--k`` (graph neighbours) against the pixels of a command's graph inputs, before any work.

    ``inputs``: (label, pixels) per input (e.g. "sky fraction 1/192 at nside 8", 4).  A kNN graph needs
    more pixels than k: a given ``--k`` >= an input's pixels is a ValueError naming --k, each such input
    and its pixels, the largest k that works and ``remedy``; the default k is capped at pixels - 1 there
    (a complete graph, as the graphs of coarse levels always are), one note per such input (returned)."""
    small = [(label, n) for label, n in inputs if n <= k]
    if small and given:
        where = "; ".join(f"{label}: {n} pixels" for label, n in small)
        raise ValueError(f"--k {k} graph neighbours needs inputs of more than {k} pixels ({where}): "
                         f"use --k <= {min(n for _, n in small) - 1}, or {remedy}")
    return [f"{label} has {n} pixels: the default --k {k} is capped at {n - 1} there (a complete graph)"
            for label, n in small]


def check_footprint_groups(indices, nside: int, footprint: str, networks: str, remedy: str) -> None:
    """A footprint of NESTED pixel ``indices`` at ``nside`` that a graph network pools, before any work: where no
    4 NESTED siblings (the children of one pixel at nside / 2) are all in it, its first pooling keeps nothing
    (:func:`~deepsphere_gen.nn.partial_sky_pool_plan` stops pooling there): a ValueError naming ``footprint`` (the
    option and its value), why and what to change; ``networks``: who pools ("the graph network");
    ``remedy``: the command's other way out ("--methods without graph")."""
    import numpy as np

    idx = np.asarray(indices, dtype=np.int64)
    if nside < 2 or (idx.size and np.unique(idx // 4, return_counts=True)[1].max() == 4):
        return
    raise ValueError(f"{footprint}: no complete group of 4 NESTED sibling pixels (the 4 children of one pixel at nside "
                     f"{nside // 2}) among its {idx.size} pixels at nside {nside}: the footprint is too fragmented at "
                     f"this nside for the pooling of {networks}, which would keep none of it; use a more compact footprint, "
                     f"or a mask made at a larger --nside, or {remedy}")


def footprint_pooling_notes(steps, where: str, networks: str, min_drop: float = 0.0) -> list[str]:
    """Notes (without the command's prefix) on what a graph network's pooling does to a footprint, from the steps
    of :func:`~deepsphere_gen.nn.partial_sky_pool_plan` ((nside, pixels, parents kept) per pooling): the pixels each
    pooling drops (those whose parent pixel is partly outside the footprint; only where the first pooling drops at
    least ``min_drop`` of the footprint's pixels, default any), and, where the first pooling keeps less
    than half of the pixels (the later ones of any footprint end on a few), plainly that the footprint is too
    fragmented and how few pixels the blocks see.  ``where``
    names the footprint; ``networks`` who pools, possessive ("the graph networks'")."""
    notes = []
    lost = ", ".join(f"{n - 4 * kept} of {n} at nside {nside} -> {nside // 2}" for nside, n, kept in steps if n > 4 * kept)
    if lost and steps[0][1] - 4 * steps[0][2] >= min_drop * steps[0][1]:
        notes.append(f"{where}: {networks} pooling drops the pixels whose parent pixel is partly outside the footprint "
                     f"({lost})")
    if steps and 8 * steps[0][2] < steps[0][1]:  # the first pooling keeps less than half: fragmented, not small
        nside, n, kept = steps[0]
        blocks = " -> ".join([str(n)] + [str(k) for _, _, k in steps])
        notes.append(f"{where}: the footprint is too fragmented to pool at nside {nside}: the first pooling keeps "
                     f"{4 * kept} of its {n} pixels, and {networks} blocks see {blocks} pixels; a more compact "
                     "footprint, or a mask made at a larger --nside, keeps more")
    return notes
