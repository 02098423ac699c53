"""``deepsphere-gen massmaps``: DeepSphere's cosmology experiment, end to end.

    deepsphere-gen massmaps                 # generate + train + evaluate (default settings)
    deepsphere-gen massmaps --quick         # CI-sized run
    deepsphere-gen massmaps generate|train|evaluate [options]
    deepsphere-gen massmaps classify MAP.fits [...]   # apply trained networks to FITS maps

Options may stand before or after the step (``massmaps --nside 8 generate`` ==
``massmaps generate --nside 8``): every option is parsed with ``default=SUPPRESS`` and
the defaults are applied once, in :func:`_config`.  Before any work the options are checked against each
other and the inputs (--k, methods, resolutions: :mod:`._massmaps_checks`), and the device, the folders and
the free disk space (:mod:`._preflight`); classify is :mod:`._massmaps_classify`.  Ctrl-C ends with
"interrupted after epoch N ...; rerun the same command to resume" and exit status 130.
The run step trains the networks and fits the baselines side by side in ``--workers``
processes (:class:`~deepsphere_gen.experiments.massmaps.ParallelRun`; the same fingerprinted
checkpoints, the same Ctrl-C handling and resume as one process).  Noise is physical
(``--deepsphere-level``, ``--ngal``, ``--sigma-e``) or, explicitly, ``--relative-noise``.
Runs unchanged under ``torchrun --nproc_per_node N -m deepsphere_gen.cli massmaps ...``.
Imports torch and the experiment only when the command runs (``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from dataclasses import MISSING, fields
from pathlib import Path
from types import SimpleNamespace

from .. import _cache_dirs
from ._argv import files_out_of_lists, hidden, path_arg, refuse_unused, shown, step_out_of_lists
from ._argv import option as _get
from ._exits import EXIT_INTERRUPTED, TerminationAsInterrupt, fail, report_interrupt, report_os_error
from ._massmaps_checks import check_k, check_methods, check_options_apply, check_resolutions, pooling_notes, preflight
from ._massmaps_classify import EXIT_OUT_OF_DISTRIBUTION, classify
from ._quick import quick_note
from ..experiments.massmaps.config import METHODS, NETWORK_METHODS, ExperimentConfig

HELP = "cosmology mass-map classification: graph, harmonic, hybrid networks vs SVM baselines"

#: --quick: CI-sized run (14-32 s wall on 2 CPU cores, data included)
QUICK = dict(nside=16, n_maps=24, sky_fractions=("1", "1/12"), deepsphere_levels=(0.0, 2.0), epochs=3, min_steps=40,
             channels=(8, 16, 32), harmonic_bandlimits=(8, 4, 2), harmonic_channels=(4, 4, 4), baseline_noise_draws=2)
#: printed under the table of a --quick run (the JSON's config says ``quick: true``)
QUICK_NOTE = quick_note(("accuracies", "margins"))
#: default output folder (relative to the current folder; printed at start)
OUT_DIR = "massmaps-out"
#: default number of worker processes of the run step
WORKERS = 2

_STEPS = {"generate": "generate (or reuse) the mass-map data set",
          "train": "train the networks (checkpointed, resumable)",
          "evaluate": "evaluate networks and baselines; table, JSON, plots",
          "run": "generate, train and evaluate (the default)"}
#: the step names (never a value of a list option)
_STEP_WORDS = (*_STEPS, "classify")
#: options taking one or more values (nargs="+"), which would swallow a step name after them
_LIST_OPTIONS = ("--sky-fractions", "--deepsphere-level", "--ngal", "--relative-noise", "--methods", "--checkpoint")
#: options without a value
_FLAGS = ("--quick", "--no-augment", "--warm-start", "--average-views", "--restart", "--no-progress", "--no-plots",
          "--force", "--help")
#: options only some steps use -> those steps (refused by the others, wherever they stand: _argv.refuse_unused)
_USED_BY = {"--json": ("evaluate", "run"), "--no-plots": ("evaluate", "run"), "--restart": ("train", "run"),
            **{name: ("classify",) for name in ("--method", "--checkpoint", "--field", "--force")}}


def _common(p, step: str | None, d) -> None:
    """The run options of the parser of ``step`` (None: the command's own); every default is SUPPRESS (see the
    module docstring); those of :data:`_USED_BY` not in the step's ``--help`` where it does not use them; ``d``: the
    ExperimentConfig defaults that the help texts name (:func:`_defaults`)."""
    S = argparse.SUPPRESS
    g = p.add_argument_group("data set")
    g.add_argument("--quick", action="store_true", default=S,
                   help="small CI settings (nside 16, 24 maps/class, 2 noise levels, short training)")
    g.add_argument("--nside", type=int, default=S, help=f"HEALPix resolution (default {d.nside})")
    g.add_argument("--n-maps", type=int, default=S, help=f"full-sky maps per class (default {d.n_maps})")
    g.add_argument("--seed", type=int, default=S,
                   help=f"seed of maps, noise, initialisation and data order (default {d.seed})")
    g.add_argument("--generator", default=S, metavar="shells|lognormal|gaussian",
                   help=f"maps: shells = log-normal matter shells summed along the line of sight, lognormal = one "
                        f"log-normal convergence field (the records made before the shells), gaussian = a Gaussian "
                        f"field of the same C_l (default {d.generator})")
    g.add_argument("--sky-fractions", nargs="+", default=S, metavar="F",
                   help="1 (full sky), 1/12, 1/48, 1/192 (nested patches) or 'footprint' "
                        f"(default {' '.join(d.sky_fractions)})")
    g.add_argument("--footprint", type=path_arg, default=S, metavar="builtin|FITS",
                   help="survey footprint for sky fraction 'footprint': the built-in band or a HEALPix FITS mask")
    _noise_options(g, d)
    g.add_argument("--full-sky-nside", type=int, default=S,
                   help=f"resolution the full sky (sky fraction 1) is averaged down to (default {d.full_sky_nside})")
    g.add_argument("--data-dir", type=path_arg, default=S,
                   help=f"cache of generated maps (default {_cache_dirs.default_data_dir()}: "
                        f"${_cache_dirs.ENV_VAR} or $XDG_CACHE_HOME move it)")
    t = p.add_argument_group("training")
    t.add_argument("--methods", nargs="+", default=S, choices=METHODS, metavar="METHOD",
                   help=f"subset of {', '.join(METHODS)} (default {' '.join(d.methods)})")
    t.add_argument("--epochs", type=int, default=S, help=f"training epochs (default {d.epochs})")
    t.add_argument("--batch-size", type=int, default=S, help=f"global batch size (default {d.batch_size})")
    t.add_argument("--lr", type=float, default=S, help=f"peak AdamW learning rate, cosine schedule (default {d.lr:g})")
    t.add_argument("--min-steps", type=int, default=S,
                   help=f"at least this many optimisation steps per network (default {d.min_steps}; small data "
                        "sets get a smaller batch and more epochs)")
    t.add_argument("--k", type=int, default=S, dest="neighbours",
                   help=f"neighbours of the graph CNN's kNN graph, fewer than the pixels of every input (default "
                        f"{d.k}, capped at pixels - 1 on smaller inputs)")
    t.add_argument("--no-augment", action="store_true", default=S,
                   help="train on the data set's fixed noise instead of a new noise realisation per draw "
                        "(and one noise realisation per training patch for the baselines)")
    t.add_argument("--warm-start", action="store_true", default=S,
                   help="start the networks with noise from the noise-free network of the same method and sky "
                        "(trained first if missing) instead of a random initialisation")
    t.add_argument("--average-views", action="store_true", default=S,
                   help="patches: average the networks' test predictions over the 4 reflections of the square "
                        "(4 forward passes; the JSON keeps the single-view accuracy too)")
    t.add_argument("--fcn-members", type=int, default=S, metavar="N",
                   help="train N fcn (and cnn) networks per run with different training seeds (initial weights, "
                        "batch order, training noise) and average their class probabilities at test time; the JSON "
                        f"keeps each member's accuracy (default {d.fcn_members}; N x the fcn training time)")
    t.add_argument("--sky-rotations", type=int, default=S, metavar="R",
                   help="generate R randomly rotated copies of every training map once (data cache) and draw each "
                        "network training sample from the original map or one of its copies at random (the same "
                        f"steps; the baselines keep the original maps; default {d.sky_rotations}: none)")
    shown(t, step, "--restart", _USED_BY).add_argument("--restart", action="store_true", default=S,
                   help="retrain from scratch even where a checkpoint of the same settings exists")
    r = p.add_argument_group("where and how")
    _where(r)
    r.add_argument("--workers", type=int, default=S,
                   help="CPU processes of the run step: network trainings and baseline fits run side by side, "
                        f"one thread each (default {WORKERS}; 1: one after the other in this process; "
                        "checkpoints are the same either way)")
    r.add_argument("--no-progress", action="store_true", default=S,
                   help="no progress bars (they are drawn only on a terminal anyway)")
    # accepted by every step, refused where unused (_USED_BY)
    shown(r, step, "--json", _USED_BY).add_argument(
        "--json", type=path_arg, default=S, metavar="PATH",
        help="write the results as JSON: one record per method, sky fraction and noise setting, and the margins")
    shown(r, step, "--no-plots", _USED_BY).add_argument("--no-plots", action="store_true", default=S,
                                                        help="skip the PNG figures")


def _where(group, out_dir_help: str = f"checkpoints and plots (default ./{OUT_DIR}; the JSON goes where --json says)") -> None:
    S = argparse.SUPPRESS
    group.add_argument("--out-dir", type=path_arg, default=S, help=out_dir_help)
    group.add_argument("--device", default=S, help="torch device: cpu, cuda, cuda:N (default: cuda when present)")
    group.add_argument("--threads", type=int, default=S,
                       help="torch CPU threads (default 1: small graphs run fastest single-threaded, "
                            "and much faster on a busy machine)")


def _defaults() -> SimpleNamespace:
    """ExperimentConfig's defaults, read from its fields: building one validates it, which
    imports torch and the data sets (seconds; ``--help`` and argument errors need none of it)."""
    return SimpleNamespace(**{f.name: f.default_factory() if f.default is MISSING else f.default
                              for f in fields(ExperimentConfig)})


def add_arguments(parser) -> None:
    d = _defaults()  # the defaults named in the help texts
    _common(parser, None, d)
    sub = parser.add_subparsers(dest="step", metavar="STEP")
    _classify_only(hidden(parser))  # accepted before the step (massmaps --field 0 classify m.fits), refused by the others
    for name, text in _STEPS.items():
        step = sub.add_parser(name, help=text, description=text)
        _common(step, name, d)
        _classify_only(hidden(step))
    c = sub.add_parser("classify", help="classify HEALPix FITS maps with trained networks", conflict_handler="resolve",
                       description="Classify NESTED HEALPix FITS convergence maps with the networks trained by "
                                   "`massmaps train` (found under --out-dir by the map's nside; the training "
                                   "settings come from the checkpoints). Inputs unlike the training maps are "
                                   f"reported instead of classified (exit status {EXIT_OUT_OF_DISTRIBUTION}); a file "
                                   "it cannot classify is an error line naming it, the others are classified (exit "
                                   "status 2).")
    _common(hidden(c), None, d)  # the run options, refused by classify (classify's own below replace theirs)
    c.add_argument("maps", nargs="+", type=path_arg, metavar="FITS", help="NESTED HEALPix maps (UNSEEN only outside a footprint)")
    _classify_only(c)
    c.add_argument("--sky-fractions", nargs="+", default=argparse.SUPPRESS, metavar="F",
                   help="only networks of these sky fractions, each required to fit every map (default: all trained, "
                        "each map classified by those whose sky it covers)")
    S = argparse.SUPPRESS
    c.add_argument("--footprint", type=path_arg, default=S, metavar="FITS",
                   help="the mask a footprint network was trained on, checked by the content hash in the checkpoint "
                        "(needed only where its file moved since and the checkpoint predates the stored mask)")
    c.add_argument("--deepsphere-level", type=float, nargs="+", default=S, metavar="LEVEL",
                   help="only networks trained at these DeepSphere noise levels (0: no noise; default: all trained)")
    c.add_argument("--ngal", nargs="+", default=S, metavar="N",
                   help="only networks trained with these galaxy densities per arcmin^2 (inf or none: no noise)")
    c.add_argument("--relative-noise", type=float, nargs="+", default=S, metavar="LEVEL",
                   help="only networks trained at these relative noise levels (0: no noise)")
    c.add_argument("--sigma-e", type=float, default=S,
                   help="only shape-noise networks trained with this ellipticity dispersion, within a relative 1e-2 "
                        "(default: any; --deepsphere-level converts at this value, default "
                        f"{d.sigma_e})")
    _where(c, f"the output folder of `massmaps train`, whose checkpoints are searched (default ./{OUT_DIR})")


def _classify_only(p) -> None:
    """The options only classify uses (SUPPRESSed, as the run options: given before the step they stay)."""
    S = argparse.SUPPRESS
    p.add_argument("--method", default=S, choices=NETWORK_METHODS,
                   help="network to use (default fcn; with --checkpoint: the checkpoints' own)")
    p.add_argument("--checkpoint", nargs="+", type=path_arg, default=S, metavar="FILE",
                   help="use these checkpoint files instead of searching --out-dir")
    p.add_argument("--field", type=int, default=S, metavar="N",
                   help="0-based column of multi-column FITS files (required for them)")
    p.add_argument("--force", action="store_true", default=S,
                   help="print probabilities also for inputs outside the training distribution")


def reorder_argv(words: list[str]) -> list[str]:
    """The words after ``massmaps`` with a step name after a list option's values ending that list
    (:func:`._argv.step_out_of_lists`): ``--sky-fractions 1/12 generate`` reads as ``generate --sky-fractions 1/12``;
    and classify's FITS files after a list option's values taken out of it (:func:`._argv.files_out_of_lists`)."""
    return files_out_of_lists(step_out_of_lists(words, _STEP_WORDS, _LIST_OPTIONS, _FLAGS), _LIST_OPTIONS, _is_fits)


def _is_fits(word: str) -> bool:
    """A FITS file name (classify's maps): never a value of a list option."""
    return re.search(r"\.(fits?|fz)(\.gz)?$", word, re.IGNORECASE) is not None


def _config(args):
    d = _defaults()
    base = dict(QUICK) if _get(args, "quick") else {}
    pick = lambda value, key: value if value is not None else base.get(key, getattr(d, key))  # noqa: E731
    return ExperimentConfig(
        nside=pick(_get(args, "nside"), "nside"), n_maps=pick(_get(args, "n_maps"), "n_maps"),
        seed=pick(_get(args, "seed"), "seed"), generator=pick(_get(args, "generator"), "generator"),
        sky_fractions=tuple(pick(_get(args, "sky_fractions"), "sky_fractions")),
        **_noise(args, base),
        methods=tuple(_get(args, "methods") or base.get("methods", d.methods)),
        epochs=pick(_get(args, "epochs"), "epochs"), batch_size=pick(_get(args, "batch_size"), "batch_size"),
        lr=pick(_get(args, "lr"), "lr"),
        min_steps=pick(_get(args, "min_steps"), "min_steps"), augment=not _get(args, "no_augment", False),
        warm_start=bool(_get(args, "warm_start", False)),
        average_views=bool(_get(args, "average_views", False)),
        fcn_members=pick(_get(args, "fcn_members"), "fcn_members"),
        sky_rotations=pick(_get(args, "sky_rotations"), "sky_rotations"),
        channels=base.get("channels", d.channels), k=pick(_get(args, "neighbours"), "k"),
        full_sky_nside=pick(_get(args, "full_sky_nside"), "full_sky_nside"),
        baseline_noise_draws=base.get("baseline_noise_draws", d.baseline_noise_draws),
        harmonic_bandlimits=base.get("harmonic_bandlimits", d.harmonic_bandlimits),
        harmonic_channels=base.get("harmonic_channels", d.harmonic_channels),
        footprint=_get(args, "footprint"),
        data_dir=str(_get(args, "data_dir") or _cache_dirs.default_data_dir()),
        out_dir=str(_get(args, "out_dir") or OUT_DIR), device=_get(args, "device"),
        progress=not _get(args, "no_progress", False) and sys.stderr.isatty(),
    )


def _noise_options(group, d) -> None:
    """--deepsphere-level, --ngal, --relative-noise, --sigma-e (SUPPRESSed; read by :func:`_noise`)."""
    S = argparse.SUPPRESS
    group.add_argument("--deepsphere-level", type=float, nargs="+", default=S, metavar="LEVEL",
                       help="noise as DeepSphere's relative levels (std = LEVEL x clean pixel std of nside-1024 maps "
                            "smoothed by a sigma-3' Gaussian), converted to galaxy densities; 0 = no noise (default "
                            f"{' '.join(f'{v:g}' for v in d.deepsphere_levels)}: level 2 = 22.5 galaxies/arcmin^2)")
    group.add_argument("--ngal", nargs="+", default=S, metavar="N",
                       help="shape noise of a survey with N galaxies per arcmin^2 (inf or none: no noise)")
    group.add_argument("--relative-noise", type=float, nargs="+", default=S, metavar="LEVEL",
                       help="explicit option: noise std = LEVEL x the clean pixel std of the samples at the run's own "
                            "nside (not a survey property; for comparison with older runs)")
    group.add_argument("--sigma-e", type=float, default=S,
                       help=f"intrinsic ellipticity dispersion per component (default {d.sigma_e})")


def _noise(args, base: dict) -> dict:
    """Noise options: any of --deepsphere-level/--ngal/--relative-noise replaces the default levels."""
    d = _defaults()
    sigma_e = _get(args, "sigma_e", d.sigma_e)
    given = [_get(args, name) for name in ("deepsphere_level", "ngal", "relative_noise")]
    if all(v is None for v in given):
        levels = base.get("deepsphere_levels", d.deepsphere_levels)
        return dict(deepsphere_levels=tuple(levels), ngal=(), relative_noise=(), sigma_e=sigma_e)
    return dict(deepsphere_levels=tuple(given[0] or ()), ngal=tuple(given[1] or ()),
                relative_noise=tuple(given[2] or ()), sigma_e=sigma_e)


def _where_message(config, step: str) -> str:
    parts = [f"data {Path(config.data_dir).resolve()}"]
    if step != "generate":
        parts.append(f"outputs {Path(config.out_dir).resolve()}")
    parts.append(f"graph cache {_cache_dirs.graph_cache_dir()}")
    return "massmaps: " + ", ".join(parts)


def run(args) -> int:
    step = _get(args, "step") or "run"
    try:
        if step != "classify":  # classify names these with its own refusals, in one line
            refuse_unused(args, step, _USED_BY)
    except ValueError as exc:
        return fail("massmaps", str(exc))
    threads = _get(args, "threads", 1)
    if threads < 1:
        return fail("massmaps", f"--threads must be >= 1, got {threads}")
    workers = _get(args, "workers", WORKERS)
    if workers < 1:
        return fail("massmaps", f"--workers must be >= 1, got {workers}")
    import torch

    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        # a note of the run step says it once (pooling_notes); classify uses networks trained with that note
        warnings.filterwarnings("ignore", message="partial-sky pooling", category=UserWarning)
        if step == "classify":
            try:
                return classify(args, _USED_BY, OUT_DIR, _noise(args, {}))
            except ValueError as exc:
                return fail("massmaps", str(exc))
            except KeyboardInterrupt:
                print("deepsphere-gen massmaps: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
        return _run_steps(args, step)


def _run_steps(args, step: str) -> int:
    from ..training import distributed_context, shutdown_distributed

    t0 = time.perf_counter()
    stage = "setup"
    term = TerminationAsInterrupt()  # SIGTERM (timeout, a scheduler's limit) ends as Ctrl-C does
    try:
        config = _config(args)
        check_options_apply(args, config)
        config, notes = check_methods(config, step, _get(args, "methods") is not None)
        check_resolutions(config, step)
        notes += check_k(config, step, _get(args, "neighbours") is not None)
        notes += pooling_notes(config, step)
        preflight(config, step, _get(args, "json"))
        from ..experiments import massmaps as exp

        ctx = distributed_context(config.device)
        if ctx.is_main:
            print(_where_message(config, step), flush=True)
            for note in notes:
                print(note, flush=True)
        stage = "data generation"
        path = exp.generate(config, ctx, copies=step != "evaluate")  # evaluate trains nothing: no copies
        if step == "generate":
            if ctx.is_main:
                print(f"massmaps: data set at {path}")
            return 0
        restart = bool(_get(args, "restart"))
        if step == "train":
            stage = "training"
            exp.train(config, path, ctx, restart=restart)
            return 0
        workers = _get(args, "workers", WORKERS)
        if step == "run" and workers > 1 and not ctx.distributed and ctx.device.type == "cpu":
            stage = "training"
            with exp.ParallelRun(config, path, workers, restart=restart) as par:  # networks and baselines side by side
                par.wait_training()
                stage = "evaluation"
                records = exp.evaluate_all(config, path, ctx, baselines=par.baselines)
        else:
            if step == "run":
                stage = "training"
                exp.train(config, path, ctx, restart=restart)
            stage = "evaluation"
            records = exp.evaluate_all(config, path, ctx)
        if not ctx.is_main:
            return 0
        if not records:
            return fail("massmaps", "nothing to evaluate")
        print(exp.format_table(records))
        if _get(args, "quick"):
            print(QUICK_NOTE)
        try:
            pairs = exp.margins(records)
        except ValueError as err:  # records of one setting scored on different samples: keep the records
            pairs = []
            print(f"massmaps: no paired margins: {err}", file=sys.stderr)
        else:
            print(exp.format_margins(pairs))
        if _get(args, "json"):
            exp.write_json(args.json, records, config, pairs, quick=bool(_get(args, "quick")))
            print(f"massmaps: wrote {args.json}")
        if not _get(args, "no_plots"):
            for p in exp.plot_all(records, config, path):
                print(f"massmaps: wrote {p}")
        import resource

        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, child.ru_maxrss) / 2**20  # KiB -> GiB
        print(f"massmaps: done in {time.perf_counter() - t0:.0f} s wall (CPU: {time.process_time():.0f} s this process"
              f" + {child.ru_utime + child.ru_stime:.0f} s worker processes; peak memory {peak:.2f} GiB per process)")
        return 0
    except KeyboardInterrupt as exc:  # a TrainingInterrupted names its epoch
        return report_interrupt("massmaps", stage, exc, "runs", term.signum)
    except ValueError as exc:
        return fail("massmaps", str(exc))
    except BrokenPipeError:  # the reader of stdout went away (| head): the command line ends quietly
        raise
    except OSError as exc:  # e.g. the disk filled up during the run: the file system's own words, no traceback
        return report_os_error("massmaps", stage, exc)
    finally:
        term.restore()
        shutdown_distributed()
