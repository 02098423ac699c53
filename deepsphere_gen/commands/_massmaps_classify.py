"""``massmaps classify``: FITS maps classified by the networks that ``massmaps train`` wrote.

Its refusals of the run options (the networks' settings come from their checkpoints), the networks chosen by
sky fraction, method and noise, the inputs checked before any network is loaded (a file's problem is its own
error line: the other files are classified, exit status 2), and the exit status :data:`EXIT_OUT_OF_DISTRIBUTION`;
the work is :mod:`deepsphere_gen.experiments.massmaps.classify`'s.
Called by :mod:`.massmaps` (its parser defines classify's options).
"""
from __future__ import annotations

import os
import sys

from ._argv import option as _get
from ._argv import refuse_unused
from ._exits import EXIT_USAGE, fail

__all__ = ["EXIT_OUT_OF_DISTRIBUTION", "classify"]

#: exit status of classify when an input is outside the training distribution (without --force)
EXIT_OUT_OF_DISTRIBUTION = 3
#: noise options (run options; classify uses them to choose networks)
_NOISE_OPTIONS = ("deepsphere_level", "ngal", "relative_noise", "sigma_e")
#: options that classify reads (the others are fixed by the checkpoints it uses)
_CLASSIFY_SHARED = {"out_dir", "device", "threads", "sky_fractions", "footprint", *_NOISE_OPTIONS}
#: run options that set no training setting, refused by classify for their own reason
_OWN_REASONS = {"no_progress": "classify draws no progress bars",
                "workers": "classify runs in one process (--workers sets the run step's processes)",
                "data_dir": "classify reads no data set (the training inputs' statistics it checks maps against are "
                            "in the checkpoints, found under --out-dir)"}


def _classify_noises(args, noise: dict) -> list | None:
    """The noise settings classify's noise options select (kind and value: matched to the trained ones
    within a relative 1e-2, so --ngal 22.5 selects the trained 22.47), or None (all); invalid values
    (also of --sigma-e alone) are refused as `massmaps train` refuses them.  ``noise``: the command's
    ExperimentConfig noise fields of these options (``massmaps._noise(args, {})``)."""
    from ..experiments.massmaps.config import check_sigma_e

    sigma_e = _get(args, "sigma_e")
    if sigma_e is not None:
        check_sigma_e(sigma_e)  # ValueError for 0, a negative or non-finite sigma_e
    if all(_get(args, name) is None for name in ("deepsphere_level", "ngal", "relative_noise")):
        return None
    from ..experiments import massmaps as exp

    return exp.noise_settings(exp.ExperimentConfig(**noise))


def classify(args, used_by: dict, out_dir: str, noise: dict) -> int:
    """``massmaps classify``: check the inputs, find the networks, classify (see experiments.massmaps.classify).

    Returns the exit status: 0; :data:`EXIT_OUT_OF_DISTRIBUTION` where an input is outside the training distribution
    (without --force); ``EXIT_USAGE`` (2) where an input was refused (unreadable, RING, no network's sky fits it:
    one error line each, naming the file), the others classified all the same.  Raises ValueError for what refuses
    the whole command (options, maps of different nside, no trained network).

    From the command module (which imports this one): ``used_by``, its options only some steps use -> those
    steps; ``out_dir``, its default output folder; ``noise``, see :func:`_classify_noises`."""
    from ..experiments.massmaps import classify as cl
    from ._preflight import check_device

    listed = {name: name.lstrip("-").replace("-", "_") for name in used_by}
    own = _CLASSIFY_SHARED | {a for n, a in listed.items() if "classify" in used_by[n]} | {"maps", "command", "step", "_run"}
    # run options are SUPPRESSed: present only when given; those of used_by are named by refuse_unused
    given = [a for a in vars(args) if a not in own and a not in listed.values()]
    problems = []
    try:
        refuse_unused(args, "classify", used_by)
    except ValueError as exc:
        problems.append(str(exc))
    problems += [f"--{a.replace('_', '-')} does not apply to classify: {_OWN_REASONS[a]}" for a in given if a in _OWN_REASONS]
    given = [a for a in given if a not in _OWN_REASONS]
    if given:
        names = ", ".join("--" + a.replace("_", "-") for a in given)
        problems.append(f"{names} {'does' if len(given) == 1 else 'do'} not apply to classify: the networks' settings "
                        "come from their checkpoints (choose networks with --sky-fractions, "
                        "--deepsphere-level/--ngal/--relative-noise or --checkpoint)")
    if problems:  # every option classify does not use, in one line
        raise ValueError("; ".join(problems))
    skies = _get(args, "sky_fractions")
    if skies is not None:
        skies = [s.strip() for s in skies]
        for s in skies:
            cl.sky_name(s, 2**29)  # "abc", 0, -1, 2: refused as `massmaps train` refuses them
    method_given, checkpoints, force = _get(args, "method"), _get(args, "checkpoint"), bool(_get(args, "force"))
    method = method_given or "fcn"
    if method in ("harmonic", "hybrid") and skies and any(s != "1" for s in skies):
        raise ValueError(f"{method} networks are full-sky only (trained on sky fraction 1, never on patches); "
                         "use --method fcn or cnn for sky fractions " + " ".join(s for s in skies if s != "1"))
    noises = _classify_noises(args, noise)
    device = check_device(_get(args, "device")) or "cpu"
    # every file's header checked (nside, column, ordering) before any map is read, and the maps read (one column
    # of one file at a time) before any network is loaded; a file's problem is its own line, the others go on
    nside, files, problems = cl.read_user_headers(args.maps, _get(args, "field"))
    _errors(problems.values())
    maps = {}
    for p, (f, column) in files.items():
        try:
            maps[p] = cl.UserMap(cl.user_map(f, column))  # its bad pixels found once, for every network
        except ValueError as exc:
            problems[p] = _errors([str(exc)])[0]
    if not maps:
        return EXIT_USAGE
    if skies is not None:
        skies = [cl.sky_name(s, nside) for s in skies]  # "2/24" -> "1/12"; a patch finer than the map refused
    out = _get(args, "out_dir") or out_dir
    trained = None if checkpoints else cl.trained_networks(method, out)
    nets = cl.select_networks(method, out, nside, skies, noises, checkpoints, method_given=method_given is not None,
                              sigma_e=_get(args, "sigma_e"), found=trained)
    mask = _get(args, "footprint")
    if mask is not None and not any(n.sky == "footprint" for n in nets):
        raise ValueError(f"--footprint {mask}: none of the chosen networks was trained on a footprint (it gives the "
                         "mask of footprint networks, checked by the content hash their checkpoints record)")
    if mask is not None and mask != "builtin" and not os.path.isfile(mask):
        raise ValueError(f"--footprint {mask}: no such file")
    cl.read_skies(nets, mask)  # each footprint read once, before any map is checked against it
    good = [f for f in args.maps if f in maps]
    others = [n for n in trained or () if n.nside == nside]
    use, notes, sky_problems = cl.match_networks(dict.fromkeys(good), maps, nets, others,
                                                 chosen=skies is not None or bool(checkpoints))
    for note in notes:
        print(f"deepsphere-gen massmaps: note: {note}", file=sys.stderr)
    for f, lines in sky_problems.items():
        problems[f] = "; ".join(_errors(lines))
    flagged = cl.classify([f for f in good if f in use], maps, nets, device=device, force=force, use=use)
    if flagged and not force:
        print(f"deepsphere-gen massmaps: {flagged} input(s) outside the training distribution; "
              "no probabilities given for them (--force prints them anyway)", file=sys.stderr)
    total = len(dict.fromkeys(args.maps))
    if problems and len(problems) < total:
        print(f"deepsphere-gen massmaps: errors for {len(problems)} of {total} inputs (above); the other "
              f"{total - len(problems)} classified", file=sys.stderr)
    if problems:  # an input refused outranks one outside the training distribution
        return EXIT_USAGE
    return EXIT_OUT_OF_DISTRIBUTION if flagged and not force else 0


def _errors(lines) -> list:
    """Print each problem of an input as an error line (``deepsphere-gen massmaps: error: FILE: ...``, the
    commands' :func:`._exits.fail` line); the lines, as a list."""
    lines = list(lines)
    for line in lines:
        fail("massmaps", line)
    return lines
