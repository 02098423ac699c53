"""Which torch devices exist on this machine (:func:`valid_devices`) and the one check of a device a
user names (:func:`check_device`): the commands' ``--device``, ``TrainConfig.device``, ``SHT(device=)``
and the ``map_location`` of the checkpoint readers (:func:`check_map_location`).  torch is imported inside the functions: the
commands' ``--help`` imports this module without torch."""
from __future__ import annotations

__all__ = ["valid_devices", "check_device", "check_map_location"]


def valid_devices() -> list[str]:
    """The compute devices found on this machine, as the refusals of :func:`check_device` list them: cpu, then
    cuda, cuda:0 ... when CUDA is present, mps (device types torch has without a probe, meta, xpu, ..., are not
    listed; :func:`check_device` hands them to torch)."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(name):
    """``name`` (a string or ``torch.device``) unless it is known absent here (None: automatic), else ValueError
    listing :func:`valid_devices`: a name torch cannot parse ("unknown device 'gpu'; valid devices here: cpu"),
    cuda without CUDA, cuda:i beyond the GPUs present, mps without MPS.  Other device types torch parses
    (meta, xpu, ...) are handed to torch as they are: it runs on them, or says why not, itself."""
    if name is None:
        return None
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {name!r}; valid devices here: {', '.join(valid_devices())}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            missing = f"{name!r} requested but CUDA is not available on this machine"
        elif dev.index is not None and dev.index >= torch.cuda.device_count():
            missing = f"{name!r} is not present"
        else:
            return name
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return name
        missing = f"{name!r} requested but MPS is not available on this machine"
    else:
        return name
    raise ValueError(f"device {missing}; valid devices here: {', '.join(valid_devices())}")


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
