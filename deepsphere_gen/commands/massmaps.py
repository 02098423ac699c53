"""``deepsphere-gen massmaps``: DeepSphere's cosmology experiment, end to end.

    deepsphere-gen massmaps                 # generate + train + evaluate (default settings)
    deepsphere-gen massmaps --quick         # CI-sized run
    deepsphere-gen massmaps generate|train|evaluate [options]
    deepsphere-gen massmaps classify MAP.fits [...]   # apply a trained network to FITS maps

Runs unchanged under ``torchrun --nproc_per_node N -m deepsphere_gen.cli massmaps ...``.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from ..experiments import massmaps as exp

HELP = "cosmology mass-map classification: graph, harmonic, hybrid networks vs SVM baselines"

#: --quick: CI-sized run (about 2 minutes on 2 idle CPU cores)
QUICK = dict(nside=16, n_maps=24, sky_fractions=("1", "1/12"), deepsphere_levels=(0.0, 2.0), epochs=3, min_steps=40,
             channels=(8, 16, 32), harmonic_bandlimits=(8, 4, 2), harmonic_channels=(4, 4, 4), baseline_noise_draws=2)
DEFAULTS = exp.ExperimentConfig()


def _common(p, with_outputs: bool = True) -> None:
    d = DEFAULTS
    p.add_argument("--quick", action="store_true", help="small CI settings (nside 16, 24 maps/class, 2 noise levels)")
    p.add_argument("--nside", type=int, default=None, help=f"HEALPix resolution (default {d.nside})")
    p.add_argument("--n-maps", type=int, default=None, help=f"full-sky maps per class (default {d.n_maps})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of maps, noise, initialisation and data order")
    p.add_argument("--sky-fractions", nargs="+", default=None, metavar="F",
                   help="1 (full sky), 1/12, 1/48, 1/192 (nested patches) or 'footprint' "
                        f"(default {' '.join(d.sky_fractions)})")
    p.add_argument("--footprint", default=None, metavar="builtin|FITS",
                   help="survey footprint for sky fraction 'footprint': the built-in band or a HEALPix FITS mask")
    p.add_argument("--deepsphere-level", type=float, nargs="+", default=None, metavar="LEVEL",
                   help="noise as DeepSphere's relative levels (std = LEVEL x clean pixel std of nside-1024 maps "
                        "smoothed by a sigma-3' Gaussian), converted to galaxy densities; 0 = no noise "
                        f"(default {' '.join(f'{v:g}' for v in d.deepsphere_levels)}: level 2 = 22.5 galaxies/arcmin^2)")
    p.add_argument("--ngal", nargs="+", default=None, metavar="N",
                   help="shape noise of a survey with N galaxies per arcmin^2 (inf or none: no noise)")
    p.add_argument("--sigma-e", type=float, default=d.sigma_e,
                   help=f"intrinsic ellipticity dispersion per component (default {d.sigma_e})")
    p.add_argument("--relative-noise", type=float, nargs="+", default=None, metavar="LEVEL",
                   help="explicit option: noise std = LEVEL x the clean pixel std of the samples at the run's own "
                        "nside (not a survey property; for comparison with older runs)")
    p.add_argument("--full-sky-nside", type=int, default=None,
                   help=f"resolution the full sky (sky fraction 1) is averaged down to (default {d.full_sky_nside})")
    p.add_argument("--k", type=int, default=None, dest="neighbours",
                   help=f"neighbours of the graph CNN's kNN graph (default {d.k})")
    p.add_argument("--methods", nargs="+", default=None, choices=exp.METHODS, metavar="METHOD",
                   help=f"subset of {', '.join(exp.METHODS)} (default all)")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate (cosine schedule)")
    p.add_argument("--min-steps", type=int, default=None,
                   help=f"at least this many optimisation steps per network (default {d.min_steps}; "
                        "small data sets get a smaller batch and more epochs)")
    p.add_argument("--no-augment", action="store_true",
                   help="train on the data set's fixed noise instead of a new noise realisation per draw "
                        "(and one noise realisation per training patch for the baselines)")
    p.add_argument("--data-dir", default=d.data_dir, help="cache of generated maps")
    p.add_argument("--out-dir", default=d.out_dir, help="checkpoints, JSON and plots")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: small graphs run fastest single-threaded, "
                        "and much faster on a busy machine)")
    p.add_argument("--workers", type=int, default=2,
                   help="CPU processes of the run step: network trainings and baseline fits run side by side, "
                        "one thread each (default 2; 1: one after the other in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if with_outputs:
        p.add_argument("--json", default=None, metavar="PATH", help="write one record per method, sky fraction, noise")
        p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")


def add_arguments(parser) -> None:
    _common(parser)
    sub = parser.add_subparsers(dest="step", metavar="STEP")
    for name, text in (("generate", "generate (or reuse) the mass-map data set"),
                       ("train", "train the networks (checkpointed, resumable)"),
                       ("evaluate", "evaluate networks and baselines; table, JSON, plots"),
                       ("run", "generate, train and evaluate (the default)")):
        _common(sub.add_parser(name, help=text, description=text), with_outputs=name in ("evaluate", "run"))
    c = sub.add_parser("classify", help="classify HEALPix FITS maps with a trained network",
                       description="classify NESTED HEALPix FITS convergence maps with a trained network")
    _common(c, with_outputs=False)
    c.add_argument("maps", nargs="+", metavar="FITS", help="NESTED HEALPix maps at --nside (UNSEEN only outside the footprint)")
    c.add_argument("--method", default="fcn", choices=exp.NETWORK_METHODS, help="network to use (default fcn)")


def _config(args) -> exp.ExperimentConfig:
    base = dict(QUICK) if args.quick else {}
    d = DEFAULTS
    pick = lambda value, key: value if value is not None else base.get(key, getattr(d, key))  # noqa: E731
    return exp.ExperimentConfig(
        nside=pick(args.nside, "nside"), n_maps=pick(args.n_maps, "n_maps"), seed=args.seed,
        sky_fractions=tuple(pick(args.sky_fractions, "sky_fractions")),
        **_noise(args, base),
        methods=tuple(args.methods) if args.methods else base.get("methods", d.methods),
        epochs=pick(args.epochs, "epochs"), batch_size=args.batch_size, lr=args.lr,
        min_steps=pick(args.min_steps, "min_steps"), augment=not args.no_augment,
        channels=base.get("channels", d.channels), k=pick(args.neighbours, "k"),
        full_sky_nside=pick(args.full_sky_nside, "full_sky_nside"),
        baseline_noise_draws=base.get("baseline_noise_draws", d.baseline_noise_draws),
        harmonic_bandlimits=base.get("harmonic_bandlimits", d.harmonic_bandlimits),
        harmonic_channels=base.get("harmonic_channels", d.harmonic_channels),
        footprint=args.footprint, data_dir=args.data_dir, out_dir=args.out_dir, device=args.device,
        progress=not args.no_progress,
    )


def _noise(args, base: dict) -> dict:
    """Noise options: any of --deepsphere-level/--ngal/--relative-noise replaces the default levels."""
    given = [args.deepsphere_level, args.ngal, args.relative_noise]
    if all(v is None for v in given):
        levels = base.get("deepsphere_levels", DEFAULTS.deepsphere_levels)
        return dict(deepsphere_levels=tuple(levels), ngal=(), relative_noise=(), sigma_e=args.sigma_e)
    return dict(deepsphere_levels=tuple(args.deepsphere_level or ()), ngal=tuple(args.ngal or ()),
                relative_noise=tuple(args.relative_noise or ()), sigma_e=args.sigma_e)


def _fail(msg: str) -> int:
    print(f"deepsphere-gen massmaps: error: {msg}", file=sys.stderr)
    return 2


def _sky_values(m: np.ndarray, sky, file) -> np.ndarray:
    """(samples, pixels) values of one full-sky NESTED map for a sky setting; UNSEEN inside -> ValueError."""
    from ..datasets._footprint import apply_footprint, split_patches

    if sky.footprint is not None:
        return apply_footprint(m, sky.footprint)[0][None]  # raises for UNSEEN inside the footprint
    values = split_patches(m, sky.level)[0] if sky.level is not None else m[None]
    bad = ~np.isfinite(values) | (np.abs(values) > 1e29)
    if bad.any():
        raise ValueError(f"{file}: {int(bad.sum())} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction "
                         f"{sky.name}); analyse it with --sky-fractions footprint --footprint MASK that excludes them")
    if sky.full_sky and sky.nside is not None and 12 * sky.nside**2 < values.shape[-1]:  # averaged down
        values = values.reshape(1, 12 * sky.nside**2, -1).mean(-1)
    return values


def _classify(config, args, ctx) -> int:
    """Class probabilities of user FITS maps per sky setting and noise level (mean over patches).

    Every file is read and checked (nside, NESTED ordering, UNSEEN inside the analysed sky)
    before anything is generated or loaded.
    """
    from ..datasets._footprint import read_healpix_fits

    skies = exp.sky_settings(config)
    values = {(f, s.name): _sky_values(read_healpix_fits(f, config.nside, ordering="NESTED"), s, f)
              for f in args.maps for s in skies}
    noises = exp.noise_settings(config)
    missing = [str(exp.checkpoint_path(config, args.method, s, n)) for s in skies for n in noises
               if not exp.checkpoint_path(config, args.method, s, n).is_file()]
    if missing:
        return _fail(f"no trained {args.method} network at {', '.join(missing)}; "
                     "run `deepsphere-gen massmaps train` with the same options first")
    path = exp.generate(config, ctx)
    for sky in skies:
        for noise in noises:
            train_set = exp._dataset(path, sky, noise, config, "train")
            model = exp.build_model(args.method, sky, config, exp._scale(train_set))
            model.load_state_dict(exp.load_checkpoint(exp.checkpoint_path(config, args.method, sky, noise))["model"])
            model.eval()
            for file in args.maps:
                x = torch.as_tensor(values[file, sky.name], dtype=torch.float32)[..., None]
                with torch.no_grad():
                    p = torch.softmax(model(x), -1).mean(0)
                print(f"{file}: sky {sky.name}, {noise.label}, {args.method}: "
                      f"P(class 0) = {float(p[0]):.3f}, P(class 1) = {float(p[1]):.3f}")
    return 0


def run(args) -> int:
    step = getattr(args, "step", None) or "run"
    if args.workers < 1:
        return _fail(f"--workers must be >= 1, got {args.workers}")
    if args.threads is not None:
        if args.threads < 1:
            return _fail(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    from ..training import distributed_context, shutdown_distributed

    t0 = time.perf_counter()
    try:
        config = _config(args)
        ctx = distributed_context(config.device)
        if step == "classify":
            return _classify(config, args, ctx)
        path = exp.generate(config, ctx)
        if step == "generate":
            if ctx.is_main:
                print(f"massmaps: data set at {path}")
            return 0
        if step == "train":
            exp.train(config, path, ctx)
            return 0
        if step == "run" and args.workers > 1 and not ctx.distributed and ctx.device.type == "cpu":
            with exp.ParallelRun(config, path, args.workers) as par:  # networks and baselines side by side
                par.wait_training()
                records = exp.evaluate_all(config, path, ctx, baselines=par.baselines)
        else:
            if step == "run":
                exp.train(config, path, ctx)
            records = exp.evaluate_all(config, path, ctx)
        if not ctx.is_main:
            return 0
        if not records:
            return _fail("nothing to evaluate")
        print(exp.format_table(records))
        if args.json:
            exp.write_json(args.json, records, config)
            print(f"massmaps: wrote {args.json}")
        if not args.no_plots:
            for p in exp.plot_all(records, config, path):
                print(f"massmaps: wrote {p}")
        import resource

        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, child.ru_maxrss) / 2**20  # KiB -> GiB
        print(f"massmaps: done in {time.perf_counter() - t0:.0f} s wall (CPU: {time.process_time():.0f} s this process"
              f" + {child.ru_utime + child.ru_stime:.0f} s worker processes; peak memory {peak:.2f} GiB per process)")
        return 0
    except ValueError as exc:
        return _fail(str(exc))
    finally:
        shutdown_distributed()
