"""Which torch devices exist on this machine (:func:`valid_devices`) and the one check of a device a
user names (:func:`check_device`): the commands' ``--device``, ``TrainConfig.device``, ``SHT(device=)``
and the ``map_location`` of the checkpoint readers (:func:`check_map_location`).  torch is imported inside the functions: the
commands' ``--help`` imports this module without torch."""
from __future__ import annotations

__all__ = ["valid_devices", "check_device", "check_map_location"]


def valid_devices() -> list[str]:
    """Devices torch can use on this machine: cpu, then cuda, cuda:0 ... when CUDA is present, mps."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(name):
    """``name`` (a string or ``torch.device``) if torch can run on it here (None: automatic), else
    ValueError listing the valid ones ("unknown device 'gpu'; valid devices here: cpu")."""
    if name is None:
        return None
    import torch

    valid = valid_devices()
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {name!r}; valid devices here: {', '.join(valid)}") from None
    if dev.type == "cpu" or str(dev) in valid:
        return name
    what = "CUDA" if dev.type == "cuda" else dev.type
    missing = f"{name!r} is not present" if dev.type == "cuda" and torch.cuda.is_available() else \
        f"{name!r} requested but {what} is not available on this machine"
    raise ValueError(f"device {missing}; valid devices here: {', '.join(valid)}")


def check_map_location(map_location):
    """``map_location`` of ``torch.load`` if it names a device torch can use here (a string or ``torch.device``;
    None, dicts and callables pass as they are), else ValueError naming the argument
    ("map_location: unknown device 'gpu'; valid devices here: cpu"), before any file is read."""
    import torch

    if isinstance(map_location, (str, torch.device)):
        try:
            check_device(map_location)
        except ValueError as exc:
            raise ValueError(f"map_location: {exc}") from None
    return map_location
