"""``massmaps`` run options checked before any work, each refusal one ``ValueError`` line (the command
prints it and exits 2), each note one line the command prints: the options against each other
(:func:`check_options_apply`), the methods against the sky fractions (:func:`check_methods`), the
resolutions against the methods (:func:`check_resolutions`), --k against the graph inputs (:func:`check_k`),
the pixels the graph networks' pooling drops on a footprint (:func:`pooling_notes`), and device, folders
and free disk (:func:`preflight`, with :mod:`._preflight`).  Each takes the built
:class:`~deepsphere_gen.experiments.massmaps.config.ExperimentConfig` (and the parsed options or whether
an option was given, where that matters).
"""
from __future__ import annotations

from pathlib import Path

from ._argv import option as _get

__all__ = ["preflight", "check_k", "check_options_apply", "check_methods", "check_resolutions", "pooling_notes"]


def preflight(config, step: str, json_path=None) -> None:
    """Device, folders and disk space, before any work (one-line ValueError)."""
    from ._preflight import check_free_space, check_step_paths

    check_step_paths(config.device, config.data_dir, config.out_dir, step, json_path)
    data_bytes = 0 if _dataset_present(config) else 4 * 2 * config.n_maps * 12 * config.nside**2  # float32
    copies = 0 if step == "evaluate" else _rotations_bytes(config)  # evaluate makes no copies
    what = f"the data set ({config.n_maps} maps x 2 classes at nside {config.nside})"
    if copies:
        what += f" and its {config.sky_rotations} rotated copies of each training map (--sky-rotations)"
    check_free_space(config.data_dir, data_bytes + copies + 2**24, what)
    if step != "generate":
        check_free_space(config.out_dir, _output_bytes(config), "checkpoints and figures")


def check_k(config, step: str, k_given: bool) -> list[str]:
    """--k against the inputs of the graph networks (fcn, cnn) of train/evaluate/run, before any work.

    A kNN graph needs more pixels than ``k``: a given ``--k`` >= the pixels of an input is refused
    (ValueError naming --k, each such sky fraction, nside and pixel count); the default k is capped at
    pixels - 1 on such inputs, as the graphs of the coarse levels always are (a complete graph: tiny
    settings such as 1/192 patches at nside 8 keep running), and one note per input says so (returned)."""
    from ..experiments import massmaps as exp
    from . import _preflight

    if step == "generate":
        return []
    graph_inputs = [(sky.name, sky.nside, exp.input_pixels(sky, config)) for sky in exp.sky_settings(config)
                    if any(m in ("fcn", "cnn") for m in exp.methods_for(sky, config.methods))]
    notes = _preflight.check_k(config.k, k_given,
                               [(f"sky fraction {name} at nside {nside}", n) for name, nside, n in graph_inputs],
                               "other --sky-fractions / --nside / --full-sky-nside")
    return [f"massmaps: note: {note}" for note in notes]


def check_options_apply(args, config) -> None:
    """Given options that would do nothing with the other options, refused before any work (one ValueError naming
    them; was: silently ignored): --footprint without sky fraction 'footprint'; --full-sky-nside above --nside (the
    full sky is averaged down, never up) or without sky fraction 1; --average-views without a patch sky fraction
    that a graph network (fcn, cnn) runs on; --fcn-members N > 1 without fcn or cnn in --methods; --sky-rotations
    R > 0 without a network in --methods (the generate step, which makes the copies, checks it too).  (The
    default full_sky_nside above --nside is fine: the JSON records the resolution the full sky ran at.)"""
    from ..experiments import massmaps as exp

    skies = config.sky_fractions
    if _get(args, "footprint") is not None and "footprint" not in skies:
        raise ValueError(f"--footprint {config.footprint} applies only to sky fraction 'footprint': add footprint to "
                         f"--sky-fractions (now {' '.join(skies)}) or leave --footprint out")
    fsn = _get(args, "full_sky_nside")
    if fsn is not None and fsn > config.nside:
        raise ValueError(f"--full-sky-nside {fsn} exceeds --nside {config.nside}: the full sky is averaged down from "
                         f"the maps' nside, never up; use --full-sky-nside <= {config.nside} or leave it out")
    if fsn is not None and not any(s.full_sky for s in exp.sky_settings(config)):
        raise ValueError(f"--full-sky-nside {fsn} applies only to sky fraction 1: add 1 to --sky-fractions (now "
                         f"{' '.join(skies)}) or leave --full-sky-nside out")
    graph = [m for m in config.methods if m in exp.ENSEMBLE_METHODS]
    if _get(args, "average_views") and not any(sky.level is not None and exp.methods_for(sky, graph)
                                               for sky in exp.sky_settings(config)):
        raise ValueError(f"--average-views averages the fcn and cnn predictions over the reflections of nested "
                         f"patches: it needs a patch sky fraction (1/12, 1/48, ...) in --sky-fractions (now "
                         f"{' '.join(skies)}) and fcn or cnn in --methods (now {' '.join(config.methods)})")
    members = _get(args, "fcn_members")
    if members is not None and members > 1 and not graph:
        raise ValueError(f"--fcn-members {members} trains ensembles of fcn and cnn networks: add fcn or cnn to "
                         f"--methods (now {' '.join(config.methods)}) or leave --fcn-members out")
    if config.sky_rotations and not any(m in exp.NETWORK_METHODS for m in config.methods):
        raise ValueError(f"--sky-rotations {config.sky_rotations} augments the networks' training samples (the "
                         f"baselines keep the original maps): add a network to --methods (now "
                         f"{' '.join(config.methods)}) or leave --sky-rotations out")


def check_methods(config, step: str, methods_given: bool):
    """Methods that run on none of the sky fractions (harmonic and hybrid run on the full sky only, a baseline with
    a patch-only feature group, as strong_svm, on nested patches only: ``massmaps.methods_for``), before any work:
    given with --methods, refused (ValueError naming the method and the sky fractions); from the default list, left
    out of ``config.methods`` (the JSON records what ran) with a note.  A method given with --methods that runs on
    some of the sky fractions but not all gets a note naming the ones it skips (``config.sky_fractions`` lists
    every sky fraction of the run; the default list's split is the documented one: no note).
    Returns (config, notes)."""
    from copy import copy

    from ..experiments import massmaps as exp

    if step == "generate":
        return config, []
    skies = exp.sky_settings(config)
    skipped = {m: [sky.name for sky in skies if m not in exp.methods_for(sky, (m,))] for m in config.methods}
    where = {m: "the full sky (sky fraction 1)" if m in exp.FULL_SKY_METHODS else
             "nested patches (sky fractions 1/12, 1/48, 1/192, ...)" for m in config.methods}
    idle = [m for m in config.methods if len(skipped[m]) == len(skies)]
    fractions = " ".join(config.sky_fractions)
    if not idle:
        partial = [m for m in config.methods if skipped[m]] if methods_given else []
        return config, ([] if not partial else [
            "massmaps: note: " + "; ".join(f"{m} runs only on {where[m]}: skipped on sky fraction "
                                           f"{' '.join(skipped[m])}" for m in partial)])
    what = "; ".join(f"{m} runs only on {where[m]}" for m in idle)
    if methods_given:
        raise ValueError(f"--methods {' '.join(idle)}: {what}, not on --sky-fractions {fractions}")
    kept = tuple(m for m in config.methods if m not in idle)
    if not kept:
        raise ValueError(f"none of the methods runs on --sky-fractions {fractions}: {what}")
    narrowed = copy(config)  # not dataclasses.replace: validating again would read the footprint file again
    narrowed.methods = kept
    return narrowed, [f"massmaps: note: {what}: not run on --sky-fractions {fractions}"]


def check_resolutions(config, step: str) -> None:
    """Resolutions too small for a method that runs on them, before any work (one ValueError naming the option,
    --nside or --full-sky-nside, and its smallest allowed value; was: the library's refusal after the data were
    generated and the other networks trained): on the full sky (at min(--nside, --full-sky-nside)) the harmonic
    network's first bandlimit L needs nside >= L / 3 (L <= 3 nside), the hybrid's two poolings by 4 nside >= 4,
    the baselines' anafast band powers nside >= 2; on a footprint the baselines nside >= 2; on nested patches the
    baselines' statistics patches of at least 8 x 8 pixels (nside >= 8 x 2^level); the baselines only where they
    run (not in the train step).  The limits are the library's: ``HealpixSampling.max_bandlimit`` and
    ``features.MIN_SIDE``."""
    from ..experiments import massmaps as exp
    from ..experiments.massmaps.features import MIN_SIDE
    from ..sampling import HealpixSampling

    if step == "generate":
        return
    problems = []
    for sky in exp.sky_settings(config):
        methods = exp.methods_for(sky, config.methods)
        baselines = [m for m in methods if m in exp.BASELINES and step != "train"]
        if sky.level is not None:
            side = config.nside >> sky.level
            if baselines and side < MIN_SIDE:
                problems.append(f"--nside {config.nside} gives {side} x {side} pixel patches at sky fraction {sky.name}, "
                                f"too small for {', '.join(baselines)} (at least {MIN_SIDE} x "
                                f"{MIN_SIDE}): use --nside >= {MIN_SIDE << sky.level}")
            continue
        need = {}
        if sky.full_sky and "harmonic" in methods:
            L = config.harmonic_bandlimits[0]
            n = 1
            while HealpixSampling(n).max_bandlimit < L:  # the smallest nside whose sampling supports L
                n *= 2
            need["harmonic"] = (n, f"for its bandlimit L={L} (L <= 3 nside)")
        if sky.full_sky and "hybrid" in methods:
            need["hybrid"] = (4, "for its two poolings by 4")
        if baselines:
            need[" and ".join(baselines)] = (2, "for anafast band powers above l = 2")
        too_small = {m: why for m, why in need.items() if sky.nside < why[0]}
        if too_small:
            smallest = max(n for n, _ in too_small.values())
            if sky.footprint is not None or config.nside <= config.full_sky_nside:
                option, value = "--nside", config.nside
            else:
                option, value = "--full-sky-nside", config.full_sky_nside
            what = ", ".join(f"{m} need{'' if ' and ' in m else 's'} nside >= {n} {why}"
                             for m, (n, why) in too_small.items())
            problems.append(f"{option} {value} is too small for sky fraction {sky.name}: {what}; use {option} >= "
                            f"{smallest}")
    if problems:
        raise ValueError("; ".join(problems) + " (or other --sky-fractions / --methods)")


def pooling_notes(config, step: str) -> list[str]:
    """One note per footprint on which a graph network (fcn, cnn) runs: the pixels its pooling drops (those
    whose parent pixel is partly outside the footprint), said here once instead of as the library's
    UserWarning at every network built (which the command silences, also in its worker processes), and a
    second where the first pooling keeps less than half of them (:func:`._preflight.footprint_pooling_notes`,
    cosmo's too).  A footprint without a complete group of 4 NESTED siblings is refused (ValueError naming
    --footprint: the networks' pooling and the input statistics their checkpoints keep need one;
    :func:`._preflight.check_footprint_groups`; was: "samples need at least one complete group of 4 NESTED
    sibling pixels" at the start of training)."""
    import numpy as np

    from ..experiments import massmaps as exp
    from ._preflight import check_footprint_groups, footprint_pooling_notes

    if step == "generate":
        return []
    notes = []
    for sky in exp.sky_settings(config):
        if sky.footprint is None or not any(m in ("fcn", "cnn") for m in exp.methods_for(sky, config.methods)):
            continue
        check_footprint_groups(np.flatnonzero(sky.footprint), sky.nside or config.nside, f"--footprint {config.footprint}",
                               "the graph networks (fcn, cnn)", "--methods without fcn and cnn")
        notes += [f"massmaps: note: {note}" for note in
                  footprint_pooling_notes(exp.footprint_pooling_steps(sky, config), f"sky fraction {sky.name}",
                                          "the graph networks'")]
    return notes


def _output_bytes(config) -> int:
    """Disk for the checkpoints, JSON and figures of a run (:func:`._preflight.network_output_bytes`): every network
    run (each ensemble member, each noise setting) on its sky's input pixels (about 40 MiB in all at the default
    settings)."""
    from ..experiments import massmaps as exp
    from ._preflight import network_output_bytes

    n_noise = len(exp.noise_settings(config))
    return network_output_bytes(
        (n_noise * sum(exp.members_of(config, m) for m in exp.methods_for(sky, config.methods) if m in exp.NETWORK_METHODS),
         exp.input_pixels(sky, config)) for sky in exp.sky_settings(config))


def _rotations_bytes(config) -> int:
    """Disk for the rotated copies of the training maps (--sky-rotations) where they are not generated yet."""
    if not config.sky_rotations:
        return 0
    from ..datasets import sky_rotations_dir
    from ..experiments.massmaps.data import data_config, n_training_maps

    n = n_training_maps(config)
    if (sky_rotations_dir(data_config(config), n, config.sky_rotations, config.data_dir) / "metadata.json").is_file():
        return 0
    return 4 * 2 * n * config.sky_rotations * 12 * config.nside**2  # float32


def _dataset_present(config) -> bool:
    """The data set of these generation parameters (nside, maps, seed, smoothing, ...) exists
    under the data folder (then it is reused and needs no disk space)."""
    import json

    from .._fingerprint import canonical
    from ..experiments.massmaps.data import data_config

    want = canonical(data_config(config).generation_params())
    for meta in Path(config.data_dir).glob(f"massmaps-nside{config.nside}-*/metadata.json"):
        try:
            gen = json.loads(meta.read_text()).get("generation", {})
        except (OSError, ValueError):
            continue
        if canonical(gen) == want:
            return True
    return False
