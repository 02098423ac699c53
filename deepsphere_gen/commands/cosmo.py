"""``deepsphere-gen cosmo``: partial-sky cosmological parameter inference on a survey footprint.

    deepsphere-gen cosmo                  # generate + train + evaluate (default settings)
    deepsphere-gen cosmo --quick          # CI-sized run
    deepsphere-gen cosmo generate|train|evaluate [options]

Options may stand before or after the step (``cosmo --quick generate`` == ``cosmo generate --quick``):
every option is parsed with ``default=SUPPRESS`` and the defaults are applied once, in :func:`_config`
(as ``massmaps`` does).  Before any work the device, the folders, ``--json``, a ``--footprint`` FITS
file and the free disk are checked (:func:`_preflight`; a disk filling up later is one line too), the footprint
against the power-spectrum bands (:func:`check_footprint_bands`) and against the graph network's pooling
(:func:`pooling_notes`, as ``massmaps`` does); Ctrl-C ends with one line and exit status 130, SIGTERM with one
line and 143.  Checkpoints
carry a fingerprint of their settings, checked before any work (``train`` once; ``evaluate`` again where it
loads the weights): one of other settings is refused (naming each differing setting, the option that sets it,
and ``--methods METHOD --restart``, which retrains that method alone).  ``evaluate`` refuses, before any work,
where a requested network has no checkpoint (a member beyond those trained included: ``--graph-members 5`` with
3 trained), naming the files, rather than write over OUT_DIR/cosmo.json a record without that method.
Runs unchanged under ``torchrun --nproc_per_node N -m deepsphere_gen.cli cosmo ...`` and on
CUDA where present (``--device``).
"""
from __future__ import annotations

import argparse
import resource
import time
from dataclasses import MISSING, fields, replace
from types import SimpleNamespace

from .._cache_dirs import ENV_VAR, cosmo_data_dir
from ..experiments import cosmo as exp  # its settings only: the rest (torch) is imported on first use in run()
from ..experiments.cosmo import CALIBRATIONS, GRAPH_WEIGHTS, GRID_DEFAULTS, METHODS, CosmoExperimentConfig
from ._argv import option as _get
from ._argv import path_arg, refuse_unused, shown, step_out_of_lists
from ._exits import TerminationAsInterrupt, fail, report_interrupt, report_os_error
from ._quick import quick_note

HELP = "cosmological inference (Omega_m, sigma_8, S8) on a survey footprint: DeepSphere vs power spectrum"

#: --quick: CI-sized run (about a minute on one core)
QUICK = dict(nside=32, n_train=32, n_test=8, n_real=2, n_fiducial=4, n_calib=8, epochs=4, mlp_epochs=40,
             channels=(8, 16, 16))


def quick_description(q: dict = QUICK) -> str:
    """Every setting --quick changes, from :data:`QUICK` itself (the --help line; a test keeps every key of
    :data:`QUICK` named here)."""
    net = "-".join(map(str, q["channels"]))
    return (f"nside {q['nside']}, {q['n_train']} training + {q['n_test']} held-out + {q['n_calib']} calibration "
            f"cosmologies x {q['n_real']} realisations, {q['n_fiducial']} at the fiducial, a {len(q['channels'])}-block "
            f"{net} graph network trained {q['epochs']} epochs, MLPs at most {q['mlp_epochs']} epochs")


#: printed under the table of a --quick run (the JSON's config says ``quick: true``), worded as massmaps' by :func:`._quick.quick_note`
QUICK_NOTE = quick_note(("errors", "coverages", "widths", "target line"))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _defaults() -> tuple[SimpleNamespace, SimpleNamespace]:
    """CosmoExperimentConfig's and the grid's defaults, read without building a config (that
    imports torch and the data sets: seconds; ``--help`` and argument errors need none of it)."""
    d = {f.name: f.default for f in fields(CosmoExperimentConfig) if f.default is not MISSING}
    return SimpleNamespace(**d), SimpleNamespace(**GRID_DEFAULTS)


def _common(p, step: str | None = None) -> None:
    """The run options of the parser of ``step`` (None: the command's own); every default is SUPPRESS, so that an
    option given before the step is not overwritten by the step parser's default (see the module docstring);
    :func:`_config` applies them.  Those of :data:`_USED_BY` are not in the step's ``--help`` where it does not
    use them."""
    d, g = _defaults()
    S = argparse.SUPPRESS
    p.add_argument("--quick", action="store_true", default=S,
                   help=f"CI-sized smoke test, no science ({quick_description()}; options given override them)")
    p.add_argument("--nside", type=int, default=S, help=f"HEALPix resolution (default {g.nside})")
    p.add_argument("--bins", type=int, default=S, help=f"tomographic redshift bins, equal-count split (default {g.n_bins})")
    p.add_argument("--n-train", type=int, default=S, help=f"training cosmologies (default {g.n_train})")
    p.add_argument("--n-test", type=int, default=S, help=f"held-out cosmologies (default {g.n_test})")
    p.add_argument("--n-real", type=int, default=S,
                   help=f"full-sky realisations per cosmology (default {g.n_real}; each gives one sample per footprint copy)")
    p.add_argument("--n-fiducial", type=int, default=S, help=f"realisations at the fiducial (default {g.n_fiducial})")
    p.add_argument("--n-calib", type=int, default=S,
                   help=f"calibration cosmologies, never trained on (default {g.n_calib}; they fit the variance calibration)")
    p.add_argument("--calib-noise-draws", type=int, default=S,
                   help=f"noise realisations of every calibration map in the variance calibration "
                        f"(default {d.calib_noise_draws})")
    p.add_argument("--calibration", choices=CALIBRATIONS, default=S,
                   help="variance calibration: cv (global, linear or quadratic in the parameters, chosen by "
                        "cross-validation on the calibration cosmologies) or global (one factor per parameter) "
                        f"(default {d.calibration})")
    p.add_argument("--footprint", type=path_arg, default=S, metavar="stage3|FITS",
                   help="built-in ~1,000 deg^2 footprint (stage3) or a HEALPix FITS mask: 1 inside the survey, "
                        f"0 (or UNSEEN) outside (default {g.footprint})")
    p.add_argument("--ngal", type=float, default=S,
                   help=f"galaxies per arcmin^2, all bins together (inf: no noise; default {d.ngal:g})")
    p.add_argument("--sigma-e", type=float, default=S,
                   help=f"ellipticity dispersion per component (default {d.sigma_e:g})")
    p.add_argument("--methods", nargs="+", default=S, choices=METHODS, metavar="METHOD",
                   help=f"subset of {', '.join(METHODS)} (default all)")
    p.add_argument("--epochs", type=int, default=S, help=f"graph network epochs (default {d.epochs})")
    p.add_argument("--mlp-epochs", type=int, default=S, help=f"summary-statistic MLP epochs (default {d.mlp_epochs})")
    p.add_argument("--batch-size", type=int, default=S,
                   help=f"global batch size of the graph network (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=S,
                   help=f"peak AdamW learning rate of the graph network, cosine schedule (default {d.lr:g})")
    p.add_argument("--graph-weights", choices=GRAPH_WEIGHTS, default=S,
                   help="evaluate the graph network's epoch of lowest validation loss (best) or its last epoch "
                        f"(default {d.graph_weights})")
    p.add_argument("--graph-members", type=int, default=S,
                   help="graph networks trained with different seeds on the same data, their posteriors combined "
                        f"(default {d.graph_members}; member 0: the single network and its checkpoint; member i: "
                        "checkpoint cosmo-graph-m<i>.pt)")
    p.add_argument("--mlp-members", type=int, default=S,
                   help="summary-statistic MLPs trained per method with different seeds on the same features, their "
                        f"posteriors combined as the graph members' (default {d.mlp_members}, as --graph-members; "
                        "member 0: the single MLP and its checkpoint; member i: checkpoint cosmo-<method>-m<i>.pt)")
    shown(p, step, "--restart", _USED_BY).add_argument("--restart", action="store_true", default=S,
                   help="train the requested methods from scratch, overwriting their checkpoints (by default a "
                        "checkpoint of the same settings is reused or resumed, one of other settings refused)")
    p.add_argument("--seed", type=int, default=S, help=f"seed of the design, maps, noise and training (default {d.seed})")
    p.add_argument("--data-dir", type=path_arg, default=S,
                   help=f"simulation cache (default {cosmo_data_dir()}: ${ENV_VAR} or $XDG_CACHE_HOME move it)")
    p.add_argument("--out-dir", type=path_arg, default=S, help=f"checkpoints, JSON and plots (default ./{d.out_dir})")
    p.add_argument("--device", default=S, help="torch device: cpu, cuda, cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=S, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", default=S, help="no progress bars")
    # accepted by every step, refused where unused (_USED_BY)
    shown(p, step, "--json", _USED_BY).add_argument("--json", type=path_arg, default=S, metavar="PATH",
                                                    help="write the records (default OUT_DIR/cosmo.json)")
    shown(p, step, "--no-plots", _USED_BY).add_argument("--no-plots", action="store_true", default=S,
                                                        help="skip the PNG figures")


_STEPS = {"generate": "generate (or reuse) the simulations",
          "train": "train the estimators (checkpointed, resumable)",
          "evaluate": "evaluate on held-out cosmologies and the fiducial: table, JSON, plots",
          "run": "generate, train and evaluate (the default)"}
#: options taking one or more values (nargs="+"), which would swallow a step name after them
_LIST_OPTIONS = ("--methods",)
#: options only some steps use -> those steps (refused by the others, wherever they stand: _argv.refuse_unused)
_USED_BY = {"--json": ("evaluate", "run"), "--no-plots": ("evaluate", "run"), "--restart": ("train", "run")}
#: options without a value
_FLAGS = ("--quick", "--restart", "--no-progress", "--no-plots", "--help")


def add_arguments(parser) -> None:
    _common(parser)
    sub = parser.add_subparsers(dest="step", metavar="STEP")
    for name, text in _STEPS.items():
        _common(sub.add_parser(name, help=text, description=text), name)


def reorder_argv(words: list[str]) -> list[str]:
    """The words after ``cosmo`` with a step name after ``--methods``' values ending that list
    (:func:`._argv.step_out_of_lists`): ``--methods graph train`` reads as ``train --methods graph``."""
    return step_out_of_lists(words, tuple(_STEPS), _LIST_OPTIONS, _FLAGS)


def _config(args):
    from ..datasets.cosmo_grid import CosmoGridConfig

    from ..datasets.tomography import check_n_bins
    from ..experiments.cosmo.config import check_n_train

    q = QUICK if _get(args, "quick") else {}
    d, g = CosmoExperimentConfig(), CosmoGridConfig()
    if _get(args, "bins") is not None:  # named as the option (the grid's own check says n_bins)
        check_n_bins(_get(args, "bins"), "--bins")
    if _get(args, "n_train") is not None:  # the validation split's rule, named as the option
        check_n_train(_get(args, "n_train"), "--n-train")
    pick = lambda key, default, name=None: _get(args, name or key) if _get(args, name or key) is not None \
        else q.get(key, default)  # noqa: E731
    seed = pick("seed", d.seed)
    grid = CosmoGridConfig(nside=pick("nside", g.nside), n_bins=pick("n_bins", g.n_bins, "bins"),
                           n_train=pick("n_train", g.n_train), n_test=pick("n_test", g.n_test),
                           n_real=pick("n_real", g.n_real), n_fiducial=pick("n_fiducial", g.n_fiducial),
                           n_calib=pick("n_calib", g.n_calib), footprint=pick("footprint", g.footprint), seed=seed)
    methods = _get(args, "methods")
    cfg = CosmoExperimentConfig(grid=grid, ngal=pick("ngal", d.ngal), sigma_e=pick("sigma_e", d.sigma_e),
                                methods=tuple(methods) if methods else d.methods,
                                epochs=pick("epochs", d.epochs), mlp_epochs=pick("mlp_epochs", d.mlp_epochs),
                                calib_noise_draws=pick("calib_noise_draws", d.calib_noise_draws),
                                calibration=pick("calibration", d.calibration),
                                batch_size=pick("batch_size", d.batch_size), lr=pick("lr", d.lr), seed=seed,
                                data_dir=_get(args, "data_dir"), out_dir=pick("out_dir", d.out_dir),
                                device=_get(args, "device"), progress=not _get(args, "no_progress", False),
                                graph_weights=pick("graph_weights", d.graph_weights),
                                graph_members=pick("graph_members", d.graph_members),
                                mlp_members=pick("mlp_members", d.mlp_members))
    return replace(cfg, channels=q["channels"]) if q else cfg


def _preflight(config, step: str, json_path: str) -> list[str]:
    """Device, folders, the footprint and free disk, before any work (one-line ValueError); returns the notes of
    :func:`pooling_notes`.  The footprint read here is the run's one read: it stays on ``config.grid``
    (:func:`~deepsphere_gen.datasets.cosmo_grid.footprint_mask`) for the generation, training and evaluation."""
    from ._preflight import check_step_paths

    data_dir = config.data_dir if config.data_dir is not None else cosmo_data_dir()
    check_step_paths(config.device, data_dir, config.out_dir, step, json_path)
    check_footprint_file(config.grid)
    check_footprint_bands(config, step)
    notes = pooling_notes(config, step)
    check_disk(config, step, data_dir)
    return notes


def check_disk(config, step: str, data_dir) -> None:
    """Free disk before any work (one-line ValueError, :func:`._preflight.check_free_space`, as ``massmaps``
    checks it; was: a full disk killed the generation with SIGBUS and no message): under ``data_dir`` the data set
    (:func:`~deepsphere_gen.datasets.cosmo_grid.data_set_bytes`, an upper bound) plus 16 MiB, unless it is there
    already; under --out-dir, where the step trains or evaluates, the checkpoints, JSON and figures
    (:func:`_output_bytes`)."""
    from ..datasets.cosmo_grid import METADATA, data_set_bytes, data_set_dir
    from ._preflight import check_free_space

    grid = config.grid
    if not (data_set_dir(grid, data_dir) / METADATA).is_file():
        check_free_space(data_dir, data_set_bytes(grid) + 2**24,
                         f"the data set (nside {grid.nside}, {grid.n_bins} bins; --nside, --n-train, --n-real shrink it)")
    if step != "generate":
        check_free_space(config.out_dir, _output_bytes(config), "checkpoints, JSON and figures")


def _output_bytes(config) -> int:
    """Disk for a run's checkpoints, JSON and figures (:func:`._preflight.network_output_bytes`): the graph members
    on the footprint's pixels, the MLP members of each summary method without a graph."""
    import numpy as np

    from ..datasets.cosmo_grid import footprint_mask
    from ._preflight import network_output_bytes

    pixels = int(np.count_nonzero(footprint_mask(config.grid)))
    graph = config.graph_members if "graph" in config.methods else 0
    mlps = config.mlp_members * sum(m != "graph" for m in config.methods)
    return network_output_bytes([(graph, pixels), (mlps, 0)])


def check_footprint_file(grid):
    """The --footprint FITS file of the grid ``grid``, checked before any work as the library checks it where the
    simulations read it (:func:`~deepsphere_gen.datasets.cosmo_grid.load_footprint`: a 0/1 survey mask keeping at
    most :data:`~deepsphere_gen.datasets.cosmo_grid.MAX_FOOTPRINT_FRACTION` of the sky); its refusal is prefixed
    with the option.  The mask read (~0.1 s at nside 128) is kept on ``grid``
    (:func:`~deepsphere_gen.datasets.cosmo_grid.footprint_mask`): the run reads the file once.  Nothing to check
    for the built-in footprint (built where first needed)."""
    if grid.footprint == "stage3":
        return
    from ..datasets.cosmo_grid import footprint_mask

    try:
        footprint_mask(grid)
    except ValueError as exc:
        raise ValueError(f"--footprint: {exc}") from None


def check_footprint_bands(config, step: str) -> None:
    """The footprint against the power-spectrum bands, before any work, where a method that reads them
    (power_spectrum, handcrafted) trains or is evaluated: the call the estimator makes
    (:func:`~deepsphere_gen.datasets.pseudo_cl.default_bin_edges` of the footprint's sky fraction, as
    :class:`~deepsphere_gen.datasets.pseudo_cl.PseudoCl` calls it), its refusal (the band width, f_sky, the
    smallest f_sky that works at the run's nside) prefixed with --footprint and followed by the remedies (was: a
    64 deg^2 mask passed every check, the data set was generated, then "nside 32 leaves fewer than 2 bands of
    width 46 below l = 2 nside" named neither the footprint nor a way out).  Microseconds (the mask is the run's
    one read, :func:`~deepsphere_gen.datasets.cosmo_grid.footprint_mask`)."""
    from ..experiments.cosmo.data import FEATURE_METHODS

    used = [m for m in config.methods if m in FEATURE_METHODS]
    if step == "generate" or not used:
        return
    from ..datasets.cosmo_grid import footprint_mask
    from ..datasets.pseudo_cl import default_bin_edges

    try:
        default_bin_edges(config.grid.nside, float(footprint_mask(config.grid).mean()))
    except ValueError as exc:
        raise ValueError(f"--footprint {config.grid.footprint}: too small for the band powers of {' and '.join(used)}: "
                         f"{exc}; use a larger footprint, a higher --nside, or leave {' and '.join(FEATURE_METHODS)} out "
                         "of --methods (e.g. --methods graph)") from None


#: the fraction of a footprint's pixels that the graph network's first pooling must drop for the drop note
MATERIAL_DROP = 0.1


def pooling_notes(config, step: str) -> list[str]:
    """What the graph network's pooling does to the config's footprint
    (:func:`~deepsphere_gen.datasets.cosmo_grid.footprint_mask`: read or built once per run, 5 s at nside 1024 for
    the built-in one), before any work, as
    ``massmaps`` says it (:func:`._preflight.footprint_pooling_notes`): the pixels each pooling drops, only where
    the drop is material: the first pooling drops at least :data:`MATERIAL_DROP` (10 %) of the footprint's pixels
    (a ragged or holed mask, or a small nside: the built-in footprint at --quick's nside 32 drops 20 %).  Below that
    the note is left out: the drop is the edge of the footprint, which every partial-sky pooling sheds (the built-in
    footprint at the default nside 128 drops 238 of 4762 pixels, 5 %, and the later poolings of any footprint end
    on a few pixels), the first block still convolves those pixels, the evaluation's numbers include the effect,
    and no option changes it: the note printed on every default run was noise.  Where the first pooling keeps
    less than half of the pixels it says plainly that the footprint is too fragmented; a footprint without a
    complete group of 4 NESTED siblings, which its first pooling would leave empty, is refused naming --footprint
    (:func:`._preflight.check_footprint_groups`; was: such a footprint ran unpooled, and 2000 scattered pixels at
    nside 32 were pooled to a handful, without a word).  Only where the graph network trains or is evaluated;
    :func:`run` prints the notes once (the main process of a distributed run)."""
    if step == "generate" or "graph" not in config.methods:
        return []
    import numpy as np

    from ..datasets.cosmo_grid import footprint_mask
    from ..experiments.cosmo.models import pooling_steps
    from ._preflight import check_footprint_groups, footprint_pooling_notes

    spec, nside = config.grid.footprint, config.grid.nside
    indices = np.flatnonzero(footprint_mask(config.grid))
    check_footprint_groups(indices, nside, f"--footprint {spec}", "the graph network", "--methods without graph")
    return [f"cosmo: note: {note}" for note in
            footprint_pooling_notes(pooling_steps(nside, indices, len(config.channels)), f"footprint {spec}",
                                    "the graph network's", min_drop=MATERIAL_DROP)]


def run(args) -> int:
    step = _get(args, "step") or "run"
    try:
        refuse_unused(args, step, _USED_BY)
    except ValueError as exc:
        return fail("cosmo", str(exc))
    threads = _get(args, "threads", 1)
    if threads < 1:
        return fail("cosmo", f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    from ..training import distributed_context, shutdown_distributed

    t0, c0 = time.perf_counter(), _cpu()
    stage = "setup"
    term = TerminationAsInterrupt()  # SIGTERM (timeout, a scheduler's limit) ends as Ctrl-C does
    try:
        config = _config(args)
        json_path = _get(args, "json") or f"{config.out_dir}/cosmo.json"
        notes = _preflight(config, step, json_path)
        ctx = distributed_context(config.device)
        if ctx.is_main:
            for note in notes:
                print(note, flush=True)
        # every checkpoint the step reads, checked before any work: one of other settings is refused now
        if step in ("train", "run") and not _get(args, "restart"):
            exp.check_checkpoints(config)
        elif step == "evaluate":
            from ..experiments.cosmo.members import EVALUATE_REMEDY, untrained_message

            exp.check_checkpoints(config, EVALUATE_REMEDY)
            untrained = untrained_message(config)  # (the run step trains them): no record lacking a method
            if untrained:
                raise ValueError(untrained)
        stage = "data generation"
        path = exp.generate(config, ctx)
        if step == "generate":
            if ctx.is_main:
                print(f"cosmo: data set at {path} ({_cpu() - c0:.0f} s process CPU)")
            return 0
        if step in ("train", "run"):
            stage = "training"
            exp.train(config, path, ctx, restart=bool(_get(args, "restart")), check=False)  # checked above
        if step == "train":
            return 0
        stage = "evaluation"
        result = exp.evaluate_all(config, path, ctx)
        if not ctx.is_main:
            return 0
        if not result["records"]:
            return fail("cosmo", "nothing to evaluate")
        print(exp.format_table(result))
        if _get(args, "quick"):
            print(QUICK_NOTE)
        timing = {"wall_seconds": time.perf_counter() - t0, "process_cpu_seconds": _cpu() - c0,
                  "torch_threads": torch.get_num_threads(), "step": step}
        exp.write_json(json_path, result, config, {"timing": timing, "data": str(path)}, quick=bool(_get(args, "quick")))
        print(f"cosmo: wrote {json_path}")
        if not _get(args, "no_plots"):
            for p in exp.plot_all(result, config, quick=bool(_get(args, "quick"))):
                print(f"cosmo: wrote {p}")
        print(f"cosmo: done in {timing['wall_seconds']:.0f} s wall, {timing['process_cpu_seconds']:.0f} s process CPU "
              f"({timing['process_cpu_seconds'] / 60:.1f} min)")
        return 0
    except KeyboardInterrupt as exc:  # a TrainingInterrupted names its epoch
        return report_interrupt("cosmo", stage, exc, "networks", term.signum)
    except ValueError as exc:
        return fail("cosmo", str(exc))
    except BrokenPipeError:  # the reader of stdout went away (| head): the command line ends quietly
        raise
    except OSError as exc:  # e.g. the disk filled up during the run: the file system's own words, no traceback
        return report_os_error("cosmo", stage, exc)
    finally:
        term.restore()
        shutdown_distributed()
