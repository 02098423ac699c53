"""Checkpoints of the mass-map experiment: what determines a network run, and where it is kept.

Every network run (method, sky setting, noise level) is identified by a fingerprint
(:func:`deepsphere_gen._fingerprint.fingerprint`) of all that determines its checkpoint:

- ``data``: the generation parameters of the data set (its ``metadata.json``: nside,
  maps per class, seed, smoothing, band limit, cosmologies, ...);
- ``experiment``: every field of the experiment configuration except where things are
  kept, which runs are selected and what only the baselines use (:data:`NOT_FINGERPRINTED`:
  directories, device, progress, the lists of methods, sky fractions and noise settings,
  sigma_e (part of each run's noise setting), the footprint's path, the baselines' noise
  draws, whether runs with noise are warm-started: that is the ``init`` field of those runs,
  whether test predictions average views: evaluation only, and the number of ensemble
  members ``fcn_members``: each member is a run of its own, see ``member`` below);
  new fields (e.g. ``k``, ``full_sky_nside``, ``val_fraction``) are fingerprinted
  automatically; ``sky_rotations`` only when > 0 (runs without rotated copies keep their fingerprints);
  how the run step is spread over processes (``--workers``) is no field;
- ``run``: method, sky fraction, a hash of the footprint mask, noise setting (kind, value,
  sigma_e: e.g. ``{"kind": "ngal", "value": 22.47, "sigma_e": 0.26}``); for ensemble member
  i >= 1 (``fcn_members``) also ``member`` (i) and ``member_seed`` (:func:`member_seed`, also its
  ``train`` seed); member 0 has neither: it is the single network, same fingerprint and file;
- ``model``: network class and a hash of its parameter and buffer shapes;
- ``train``: the :class:`~deepsphere_gen.training.TrainConfig` of the run (epochs,
  batch, learning rate, schedule, seed, ...), without paths and display settings;
- ``init`` (only for a warm-started run): the run whose weights it starts from (its name and
  fingerprint, e.g. ``{"warm_start": "fcn-sky1o48-noisenone", "fingerprint": "..."}``); a run
  from a random initialisation has no such field.

The checkpoint file is ``<out_dir>/checkpoints/<method>-sky<f>-noise<n>-<fingerprint>.pt``
(member i >= 1: ``<method>-sky<f>-noise<n>-m<i>-<fingerprint>.pt``):
another setting is another file (a fresh run), never a silently reused one, and runs of
different settings (``--quick`` and the default run) live side by side.  The fields are
stored with the checkpoint (``state["meta"]``) together with the training-input
statistics (:mod:`.map_statistics`) that ``massmaps classify`` compares user maps with and, for a
footprint run, the footprint mask itself (:func:`footprint_record`; not fingerprinted: its hash is),
so that classify needs no mask file.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np

from ..._fingerprint import canonical, fingerprint, fingerprint_meta, mask_hash
from ..._seeds import ensemble_seed
from ...sampling import check_mask, nside_of
from .config import recorded_fields

__all__ = ["NOT_FINGERPRINTED", "noise_name", "run_name", "member_seed", "member_name", "run_fields",
           "run_meta", "footprint_record", "footprint_from_record", "checkpoint_file", "find_checkpoints"]

#: ExperimentConfig fields that do not change what a checkpoint holds
NOT_FINGERPRINTED = ("data_dir", "out_dir", "device", "progress", "methods", "sky_fractions", "deepsphere_levels",
                     "ngal", "relative_noise", "sigma_e", "footprint", "baseline_noise_draws", "warm_start",
                     "average_views", "fcn_members")
#: TrainConfig fields that do not change what a checkpoint holds
_TRAIN_NOT_FINGERPRINTED = ("checkpoint", "resume", "progress", "desc", "device", "num_workers")


def noise_name(noise) -> str:
    """Short name of a noise setting: an object's ``name`` (``"none"``, ``"ngal22.47"``, ``"rel2"``)
    or a number (``2`` -> ``"2"``)."""
    return noise.name if hasattr(noise, "name") else f"{float(noise):g}"


def _noise_fields(noise):
    """A noise setting as plain data: a number, or a dataclass's fields."""
    return asdict(noise) if is_dataclass(noise) else float(noise)


def run_name(method: str, sky_name: str, noise) -> str:
    """``fcn-sky1o12-noisengal22.47``: method, sky fraction (``/`` -> ``o``), noise (:func:`noise_name`)."""
    return f"{method}-sky{sky_name.replace('/', 'o')}-noise{noise_name(noise)}"


def member_seed(seed: int, member: int) -> int:
    """Training seed of ensemble member ``member`` of a run with data seed ``seed``: ``seed`` itself
    for member 0 (the single network), else 31 bits of ``SeedSequence([seed, 4813, member])``. It
    seeds the member's initial weights, batch order, training noise and symmetries; the data, the
    splits and the fixed noise of the validation and test samples stay those of ``seed``;
    :func:`~deepsphere_gen._seeds.ensemble_seed` with stream 4813."""
    return ensemble_seed(seed, member, 4813)


def member_name(name: str, member: int) -> str:
    """Name of ensemble member ``member`` of run ``name``: ``name`` itself for member 0, else
    ``<name>-m<member>`` (e.g. ``fcn-sky1o48-noisengal22.47-m2``)."""
    return name if member == 0 else f"{name}-m{member}"


#: stem of a checkpoint of an ensemble member >= 1: ``...-m<i>-<fingerprint>``
_MEMBER_STEM = re.compile(r"-m[1-9][0-9]*-[0-9a-f]+$")


def run_fields(config, data_generation: dict, method: str, sky, noise, model, train_config,
               init: dict | None = None, member: int = 0) -> dict:
    """The fingerprinted fields of one run (plain JSON data; see the module docstring).

    ``config``: the ExperimentConfig; ``data_generation``: the data set's generation
    parameters; ``sky``: a SkySetting; ``noise``: a NoiseSetting (or a number); ``model``: the
    network (its state-dict shapes); ``train_config``: its TrainConfig; ``init``: the run it
    starts from (None: random initialisation, no ``init`` field); ``member``: ensemble member
    (0: no member fields, the single network's fingerprint).
    """
    inner = getattr(model, "model", model)
    experiment = {k: v for k, v in recorded_fields(config).items() if k not in NOT_FINGERPRINTED}
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    fields = {
        "data": data_generation,
        "experiment": experiment,
        "run": {"method": method, "sky": sky.name, "footprint": mask_hash(sky.footprint),
                "noise": _noise_fields(noise), "noise_name": noise_name(noise),
                **({"member": int(member), "member_seed": member_seed(config.seed, member)} if member else {})},
        "model": {"class": type(inner).__name__, "shapes": fingerprint(shapes), "entries": len(shapes)},
        "train": {k: v for k, v in asdict(train_config).items() if k not in _TRAIN_NOT_FINGERPRINTED},
    }
    if init is not None:
        fields["init"] = init
    return canonical(fields)


def run_meta(fields: dict, distribution: dict | None = None, footprint: str | None = None, mask=None) -> dict:
    """What a checkpoint stores beside the weights: fingerprint, fields, input statistics, the footprint's path
    and its ``mask`` (NESTED bool, ``"footprint_mask"``: :func:`footprint_record`; neither fingerprinted: the
    mask hash is)."""
    meta = {**fingerprint_meta(fields), "footprint": footprint}
    if mask is not None:
        meta["footprint_mask"] = footprint_record(mask)
    if distribution is not None:
        meta["distribution"] = distribution
    return meta


def footprint_record(mask) -> dict:
    """A NESTED bool footprint mask (12 nside^2,) as a checkpoint stores it: ``{"nside", "ordering": "NESTED",
    "packbits_zlib"}``, the bytes of ``np.packbits(mask)`` (the bits :func:`~deepsphere_gen._fingerprint.mask_hash`
    hashes) compressed by zlib: 265 bytes for the built-in footprint at nside 256 (98,304 packed, 262,656 as int32
    pixel indices); :func:`footprint_from_record` reads it back."""
    mask = check_mask(mask, name="footprint")
    return {"nside": nside_of(mask.size), "ordering": "NESTED", "packbits_zlib": zlib.compress(np.packbits(mask).tobytes(), 9)}


def footprint_from_record(record, nside: int) -> np.ndarray:
    """The NESTED bool mask (12 nside^2,) of a :func:`footprint_record`; ValueError (one line, the problem) for a
    record of another nside or ordering, or bytes that do not unpack to such a mask (compare its
    :func:`~deepsphere_gen._fingerprint.mask_hash` with the recorded one to know it is the mask trained on)."""
    if not isinstance(record, dict) or not isinstance(record.get("packbits_zlib"), bytes):
        raise ValueError("not a footprint record (no packbits_zlib bytes)")
    if record.get("nside") != nside or record.get("ordering") != "NESTED":
        raise ValueError(f"the record is for nside {record.get('nside')} {record.get('ordering')}, the network's "
                         f"nside is {nside} NESTED")
    npix = 12 * nside * nside
    try:
        packed = np.frombuffer(zlib.decompress(record["packbits_zlib"]), dtype=np.uint8)
    except zlib.error as exc:
        raise ValueError(f"its bytes do not decompress ({exc})") from None
    if packed.size != -(-npix // 8):
        raise ValueError(f"{packed.size} packed bytes, {-(-npix // 8)} expected for nside {nside}")
    return np.unpackbits(packed, count=npix).astype(bool)


def checkpoint_file(out_dir, name: str, fp: str) -> Path:
    """``<out_dir>/checkpoints/<name>-<fp>.pt``."""
    return Path(out_dir) / "checkpoints" / f"{name}-{fp}.pt"


def find_checkpoints(out_dir, method: str) -> list[Path]:
    """Checkpoint files of ``method`` under ``<out_dir>/checkpoints`` (sorted by name), without those
    of ensemble members >= 1 (member 0 is the run's network)."""
    folder = Path(out_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{method}-sky*-noise*-*.pt") if not _MEMBER_STEM.search(p.stem))
