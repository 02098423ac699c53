"""Model specs: a frozen, JSON-serialisable record of how a model was built, and checkpoints
that rebuild their model from it.

A class decorated with :func:`specified` records the arguments of every instance it builds
(defaults included); ``model.spec`` is then a :class:`ModelSpec`::

    model = DeepSphereClassifier(32, 1, channels=(16, 32), n_classes=2, K=5)
    model.spec.to_dict()
    # {"model": "DeepSphereClassifier", "version": 1,
    #  "input": {"nside": 32, "in_channels": 1, "indices": None, "order": "NESTED"},
    #  "encoder": {"channels": [16, 32], "K": 5, "k": 20, "pool_levels": 1, "pool": "max",
    #              "batch_norm": True, "laplacian": "combinatorial"},
    #  "head": {"n_classes": 2, "head": "gap", "stats": ["mean", "var"], "fc_hidden": []},
    #  "numerics": {"dtype": None}, "runtime": {"cache": True, "cache_dir": None}}
    build_model(model.spec)                  # an identical (freshly initialised) model
    save_model("net.pt", model); load_model("net.pt")   # the same model with its weights

Groups are per class (``specified(groups)``), for reading only: ``build`` passes every
argument by keyword.  Values are JSON values: tuples become lists (and tuples again when
building), a ``torch.dtype`` argument named ``dtype`` becomes its name ("float64"),
``pathlib.Path`` a string, numpy arrays lists (pixel ``indices`` saved as whole-number floats by older
versions decode to ints: ``HealpixSampling`` refuses float indices).  An argument that has no JSON form (a
``Sampling`` object) makes ``model.spec`` raise a ValueError naming it; the model itself
still builds.
"""
from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._devices import check_map_location
from .._io import atomic_write, load_torch_file, load_weights

__all__ = ["ModelSpec", "specified", "build_model", "save_model", "load_model", "SPEC_VERSION"]

#: version of the spec layout (``to_dict()["version"]``).
SPEC_VERSION = 1

_REGISTRY: dict[str, type] = {}


def _to_json(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return [_to_json(name, v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_to_json(name, v) for v in value]
    raise ValueError(f"argument {name}={value!r} ({type(value).__name__}) has no JSON form: the model has no spec "
                     "(so no save_model); save its weights with torch.save(model.state_dict(), path) instead and "
                     "load them into a model built with the same arguments (model.load_state_dict(torch.load(path)))")


def _from_json(name: str, value: Any) -> Any:
    if name == "dtype" and isinstance(value, str):
        dtype = getattr(torch, value, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {value!r} in the spec")
        return dtype
    if name == "indices" and isinstance(value, list) and value and all(
            isinstance(v, float) and v.is_integer() for v in value):
        return tuple(int(v) for v in value)  # a file saved before float indices were refused (np.arange(64.))
    if isinstance(value, list):
        return tuple(_from_json(name, v) for v in value)
    return value


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class ModelSpec:
    """How a model was built: its class name and its constructor arguments in groups.

    ``groups``: ((group, ((argument, JSON value), ...)), ...), lists frozen to tuples.
    """

    model: str
    groups: tuple

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        """Inverse of :meth:`to_dict` (also accepts the parsed JSON of :meth:`to_json`)."""
        d = dict(d)
        model, version = d.pop("model", None), d.pop("version", None)
        if model not in _REGISTRY:
            raise ValueError(f"unknown model {model!r} in the spec; known: {sorted(_REGISTRY)}")
        if version != SPEC_VERSION:
            raise ValueError(f"spec version {version!r}, this code reads version {SPEC_VERSION}")
        groups = []
        for group, args in d.items():
            if not isinstance(args, dict):
                raise ValueError(f"spec group {group!r} must be a mapping of arguments, got {args!r}")
            groups.append((group, tuple((k, _freeze(v)) for k, v in args.items())))
        return cls(model, tuple(groups))

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"model": self.model, "version": SPEC_VERSION}
        for group, args in self.groups:
            out[group] = {k: _thaw(v) for k, v in args}
        return out

    def to_json(self, **dumps_kwargs) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **dumps_kwargs)

    def arguments(self) -> dict:
        """Every constructor argument, decoded (tuples, torch dtypes), by name."""
        return {k: _from_json(k, _thaw(v)) for _, args in self.groups for k, v in args}

    def build(self, **overrides) -> torch.nn.Module:
        """A new model of this spec (fresh weights); ``overrides`` replace arguments
        (e.g. ``cache_dir=`` on another machine)."""
        cls = _REGISTRY[self.model]
        args = self.arguments()
        unknown = set(overrides) - set(args)
        if unknown:
            raise ValueError(f"{self.model} has no argument(s) {sorted(unknown)}")
        args.update(overrides)
        return cls(**args)


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def specified(groups: dict[str, tuple[str, ...]]):
    """Class decorator: record each instance's constructor arguments for ``model.spec``.

    ``groups``: group name -> argument names; every argument of ``__init__`` must be in
    exactly one group (checked when the class is defined).  The class is registered by
    its name for :func:`build_model` / :func:`load_model`.
    """

    def decorate(cls):
        init = cls.__init__
        sig = inspect.signature(init)
        params = list(sig.parameters)[1:]
        named = [a for names in groups.values() for a in names]
        if sorted(named) != sorted(params):
            raise TypeError(f"{cls.__name__}: spec groups {named} must list each argument of __init__ {params} once")

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            try:
                bound = sig.bind(self, *args, **kwargs)
            except TypeError as exc:  # Signature.bind's message names no function: name the class, as Python does
                raise TypeError(f"{type(self).__name__}.__init__() {exc}") from None
            bound.apply_defaults()
            init(self, *args, **kwargs)
            if type(self) is cls:  # the most derived decorated class records
                values = dict(list(bound.arguments.items())[1:])
                self._spec_arguments = tuple((g, tuple((a, values[a]) for a in groups[g])) for g in groups)

        cls.__init__ = __init__
        cls.spec = property(_spec, doc="The :class:`ModelSpec` this model was built from.")
        _REGISTRY[cls.__name__] = cls
        return cls

    return decorate


def _spec(self) -> ModelSpec:
    if "_spec_arguments" not in self.__dict__:
        raise ValueError(f"{type(self).__name__} is not a @specified class (a subclass must be decorated itself)")
    groups = tuple((g, tuple((a, _freeze(_to_json(a, v))) for a, v in args)) for g, args in self._spec_arguments)
    return ModelSpec(type(self).__name__, groups)


def build_model(spec, **overrides) -> torch.nn.Module:
    """A model from a :class:`ModelSpec`, its ``to_dict()`` or its JSON text (fresh weights)."""
    if isinstance(spec, str):
        spec = ModelSpec.from_json(spec)
    elif isinstance(spec, dict):
        spec = ModelSpec.from_dict(spec)
    return spec.build(**overrides)


def save_model(path, model: torch.nn.Module, **extra) -> Path:
    """Write ``{"spec": model.spec.to_dict(), "state_dict": ..., **extra}`` to ``path`` atomically
    (``torch.save``); :func:`load_model` rebuilds the model from it, in the dtype of the weights saved
    (a model cast with ``.double()`` comes back in float64).  Only models with a spec can be saved (those
    of :mod:`deepsphere_gen.models`, or built by :func:`build_model`); another module is a TypeError (save
    its ``state_dict()`` with ``torch.save`` instead)."""
    if not isinstance(getattr(type(model), "spec", None), property):
        raise TypeError(f"save_model saves the models of deepsphere_gen.models (built by their classes or by "
                        f"build_model: they have a .spec), not a {type(model).__name__}; save its weights with "
                        "torch.save(model.state_dict(), path) instead")
    state = {"spec": model.spec.to_dict(), "state_dict": model.state_dict(), **extra}
    return atomic_write(path, lambda fh: torch.save(state, fh))


def _weights_dtype(model: torch.nn.Module, weights: dict) -> torch.dtype | None:
    """The one floating dtype of the parameters in ``weights`` (a state dict of ``model``), where the model
    built from the spec has them in another (saved after ``.double()`` / ``.float()``); else None."""
    names = dict(model.named_parameters())
    saved = {w.dtype for k, w in weights.items() if k in names and isinstance(w, torch.Tensor) and w.is_floating_point()}
    built = {p.dtype for p in names.values() if p.is_floating_point()}
    return saved.pop() if len(saved) == 1 and saved != built else None


def load_model(path, map_location="cpu", **overrides) -> torch.nn.Module:
    """The model saved by :func:`save_model`: rebuilt from its spec (``overrides`` as in
    :meth:`ModelSpec.build`), cast to the dtype of the saved parameters where the spec builds
    another (a model saved after ``.double()``; files of any version) unless ``dtype=`` is among the
    overrides (the model is then in that dtype, its weights cast to it), then its weights loaded
    (``weights_only=True``); in eval mode, on ``map_location`` where it names a device (a string or
    ``torch.device``: ``load_model(p, map_location="cuda")`` is a CUDA model; was: a CPU model).
    A missing, empty, damaged or foreign file (text, a pickle of other objects) is a one-line
    ValueError naming it (the training checkpoints' reader, ``_io.load_torch_file``; damaged includes a
    flipped bit inside a tensor's data, found by the zip's CRC-32 of each record), and so is a
    ``map_location`` device this machine lacks, before the file is read (``_devices.check_map_location``); so are weights
    that do not fit the model the spec builds (an edited spec, missing, extra or reshaped entries:
    the training checkpoints' check, ``_io.load_weights``)."""
    state = load_torch_file(path, check_map_location(map_location))
    if not isinstance(state, dict) or "spec" not in state or not isinstance(state.get("state_dict"), dict):
        raise ValueError(f"{path} is not a model checkpoint of save_model (no 'spec' / 'state_dict')")
    model = build_model(state["spec"], **overrides)
    dtype = None if "dtype" in overrides else _weights_dtype(model, state["state_dict"])
    if dtype is not None:  # the caller's dtype= wins: the weights are then cast to it as they load
        model.to(dtype)
    if isinstance(map_location, (str, torch.device)):  # on that device before the weights load: one copy there
        model.to(torch.device(map_location))  # (the spec builds it on the CPU)
    load_weights(model, state["state_dict"], path, network="the network its spec builds")
    return model.eval()
