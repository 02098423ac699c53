"""Atomic file writes: a reader never sees a half-written file; the CRC-32 of an array's bytes (:func:`array_crc32`);
safe reads of ``torch.save`` files with one-line errors (:func:`load_torch_file`), and of the weights they hold
into a model (:func:`load_weights`: keys and shapes checked first, one-line errors)."""
from __future__ import annotations

import errno
import json
import math
import os
import pickle
import signal
import stat
import tempfile
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "atomic_write_json", "interrupts_deferred", "handler_replaceable", "umask", "plain_mode",
           "array_crc32", "load_torch_file", "load_weights"]


def umask() -> int:
    """The process's file-creation mask (read from /proc where it is available: setting it to
    read it back, the portable way, races with other threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(directory: bool = False) -> int:
    """The permissions a plain ``open(path, "w")`` (0o666) or ``mkdir`` (0o777) would give under
    the current umask: ``tempfile.mkstemp``/``mkdtemp`` create owner-only (0o600/0o700) files,
    which an atomic write must not pass on to the final file or folder."""
    return (0o777 if directory else 0o666) & ~umask()


def atomic_write(path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fh)`` on a temporary binary file next to ``path``, then rename it to ``path``.

    The file keeps the permissions of the file it replaces, as a plain ``open()`` would (a
    checkpoint set to 0o600 stays 0o600); a new file gets what ``open()`` gives (0o666 & ~umask).
    The parent folder is created; on any error the temporary file is removed and ``path`` is left
    as it was.  A full disk (or quota), wherever ``write`` met it, is one ``OSError`` (ENOSPC / EDQUOT) naming
    ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777  # an existing file's own permissions (no set-id bits)
    except FileNotFoundError:
        mode = plain_mode()  # mkstemp's 0o600 -> what open() would give (0o644 under umask 022)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        full = _disk_full(exc)
        if full is not None:  # one error naming the file, not torch's chain of three (OSError, RuntimeError, OSError)
            raise OSError(full.errno, full.strerror or os.strerror(full.errno), str(path)) from None
        raise
    return path


def _disk_full(exc: BaseException) -> OSError | None:
    """The OSError "no space left on device" or "disk quota exceeded" among ``exc`` and the exceptions it was raised
    from or while handling (torch's zip writer turns the failing write into a RuntimeError), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def atomic_write_json(path, obj, **dumps_kwargs) -> Path:
    """Write ``obj`` as JSON (``json.dumps(obj, **dumps_kwargs)``) atomically; NaN is refused."""
    dumps_kwargs.setdefault("indent", 1)
    text = json.dumps(obj, allow_nan=False, **dumps_kwargs) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def plain_json(obj, *, infinity: bool = False, unknown=str):
    """``obj`` in plain JSON types: dict keys as str, tuples as lists, anything of one element with ``.item()``
    (numpy / torch scalars, one-element arrays) as its Python number, other arrays as lists (``.tolist()``);
    NaN as None; +-inf as the strings "inf" / "-inf" where ``infinity`` (``--ngal inf``: no noise, as the
    option is written), else None; any other object as ``unknown(obj)`` (None: ValueError naming it)."""
    if isinstance(obj, dict):
        return {str(k): plain_json(v, infinity=infinity, unknown=unknown) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v, infinity=infinity, unknown=unknown) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError, RuntimeError):  # more than one element
            if hasattr(obj, "tolist"):
                return plain_json(obj.tolist(), infinity=infinity, unknown=unknown)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        return obj if math.isfinite(obj) else ("inf" if obj > 0 else "-inf") if infinity else None
    if unknown is None:
        raise ValueError(f"must be JSON-serialisable; got {type(obj).__name__}: {obj!r}")
    return unknown(obj)


def atomic_savefig(fig, path, **savefig_kwargs) -> Path:
    """Write the matplotlib figure ``fig`` atomically to ``path``; the format is the path's suffix
    (png without one, as ``savefig`` would), ``savefig_kwargs`` go to ``fig.savefig`` (dpi, bbox_inches)."""
    fmt = Path(path).suffix[1:].lower() or "png"
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, **savefig_kwargs))


def handler_replaceable(signum) -> bool:
    """Whether this process may take over the signal ``signum`` for a while and put its handler back: its handler
    was set from Python (``signal.getsignal`` gives None for one set outside it, which could not be restored) and
    the signal is not ignored (SIG_IGN: a batch script's background job ignores SIGINT).  The rule of
    :func:`interrupts_deferred`, the commands' SIGTERM handling and massmaps' worker start-up."""
    return signal.getsignal(signum) not in (None, signal.SIG_IGN)


@contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block has finished, then deliver each received as its previous
    handler would, SIGTERM first (``KeyboardInterrupt`` with Python's default SIGINT handler or the commands'
    SIGTERM one; the default action, ending the process, with SIG_DFL); a handler that raises ends the delivery.
    A signal that is ignored (SIG_IGN: a background job of a batch script ignores SIGINT) or whose handler was not
    set from Python (``signal.getsignal`` gives None) is left alone: it is not held, so it neither masks the other.

    For writes that must not be cut half-way: ``torch.save`` turns a ``KeyboardInterrupt`` raised
    inside its zip writer into a ``RuntimeError`` ("enforce fail at inline_container.cc"), so a
    Ctrl-C during a checkpoint write would surface as an error instead of an interruption.  Only
    the main thread receives signals; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    held = [s for s in (signal.SIGTERM, signal.SIGINT) if handler_replaceable(s)]
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for signum in (s for s in previous if s in received):  # SIGTERM first, each once
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
        else:  # SIG_DFL
            signal.raise_signal(signum)


def array_crc32(array, start: int = 0) -> int:
    """CRC-32 (``zlib.crc32``) of the array's bytes in C order, continuing ``start``; ~4 GB/s (a non-contiguous
    array is copied first).  The graph cache checks its stored arrays by it; the benchmarks compare results."""
    import numpy as np  # here: the other helpers of this module need no numpy

    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), start)


def load_torch_file(path, map_location="cpu", error: type[Exception] = ValueError):
    """``torch.load(path, map_location, weights_only=True)``, or ``error`` (a ValueError subclass) with a one-line
    message naming the file and the problem: no file, an empty file, a file that is not a
    ``torch.save`` archive (text, a zip of something else such as an ``.npz``, anything else), one holding objects
    other than tensors and plain containers (refused, never unpickled), a damaged or truncated archive; any other
    failure of an intact archive keeps torch's message ("cannot be loaded (RuntimeError: ...)"), so a
    ``map_location`` this machine lacks is never called damage (the callers check it first:
    :func:`deepsphere_gen._devices.check_map_location`); a record whose bytes do not match the zip's CRC-32 (a
    flipped bit in a tensor: torch does not check) is damage too (:func:`_failed_crc`).  The one reader of training
    checkpoints and saved models (torch is imported here, not at the top: the commands' ``--help`` uses this module
    without torch)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise error(f"checkpoint {path} is an empty file")
    bad = _failed_crc(path)
    if bad is not None:
        raise error(f"checkpoint {path} is damaged: its record {bad!r} does not match the CRC-32 checksum written "
                    "with it (the file changed after it was saved); use an intact copy")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise error(f"checkpoint {path} holds objects other than tensors and plain containers; refused (only "
                        "checkpoints written by deepsphere_gen are read)") from None
        raise error(f"{path} is not a PyTorch checkpoint (not a torch.save file)") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError, ... for damaged files
        problem = _archive_problem(path)
        if problem is None:
            raise error(f"{path} is not a PyTorch checkpoint (not a torch.save file)") from None
        if problem == "damaged" and not _reading_failed(exc):  # the archive is intact: not its fault
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise error(f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {first})") from None
        raise error(f"checkpoint {path} is {problem} ({type(exc).__name__})") from None
    return state


def _failed_crc(path) -> str | None:
    """The first record of the ``torch.save`` archive ``path`` whose bytes do not match the CRC-32 stored with it in
    the zip (``zipfile.ZipFile.testzip``, the archive's folder prefix stripped), or None: all match, or no readable
    zip (torch's legacy format, text, a zip whose directory is damaged: torch.load and :func:`_archive_problem` say
    what it is).  ``torch.load`` never checks them, so a flipped bit inside a tensor's data loaded silently, and one
    in the pickle record (``data.pkl``) surfaced as whatever the unpickler made of it ("holds objects other than
    tensors", torch's own errors): checked before torch.load, so damage is called damage.  CRC-32 finds every flip
    of up to 32 adjacent bits.  Reads the file once more (torch.load then reads it from the page cache).  Cost:
    ~0.45 ms per MB of file (zlib's CRC-32, ~2.2 GB/s): 10 ms for the largest checkpoint the commands write, 21 MB
    (massmaps' hybrid network on the full sky at nside 64 with its best epoch's weights; torch.load of it: 15 ms),
    4 ms for that network's 10.7 MB ``save_model`` file (a sha256 of its tensors: 11 ms)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError):  # no zip, or no readable one: nothing to compare with here
        return None
    return None if bad is None else bad.split("/", 1)[-1]


def _reading_failed(exc: Exception) -> bool:
    """Whether ``torch.load``'s exception ``exc`` comes from reading the archive (a record missing or unreadable:
    torch's zip reader raises RuntimeError "PytorchStreamReader failed ..."; EOFError, KeyError for a short or
    incomplete pickle), not from what was asked of the contents (a device, memory)."""
    import zipfile

    return isinstance(exc, (EOFError, KeyError, zipfile.BadZipFile)) or "PytorchStreamReader" in str(exc)


def _archive_problem(path) -> str | None:
    """Why torch.load could not read ``path``: None if it is no torch.save archive (not a zip: text,
    anything else; a zip without a ``.../data.pkl`` entry: an ``np.savez`` file, any other zip), else
    "damaged or truncated" (no readable zip directory) or "damaged" (its entries do not load)."""
    import zipfile

    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
            return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        return "damaged or truncated"
    return "damaged" if any(name.endswith("/data.pkl") for name in names) else None


def load_weights(model, weights: dict, path, error: type[Exception] = ValueError, network: str = "this network"):
    """``model.load_state_dict(weights)`` once ``weights`` (a state dict read from file ``path``) is known to fit:
    its keys and tensor shapes exactly the model's, else ``error`` (a ValueError subclass) with a one-line message
    naming the file and the first missing, unexpected or mismatching entry and how many there are (torch's own
    error lists every entry over many lines).  ``network`` names the model in the message ("the network its spec
    builds" for a checkpoint that rebuilds its model).  The one check of training checkpoints and saved models;
    returns ``model``."""
    import torch  # here: see load_torch_file

    own = model.state_dict()
    if not weights:
        raise error(f"checkpoint {path} has an empty state dict ({len(own)} entries expected)")
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    if missing or extra:
        parts = ([f"{len(missing)} of {len(own)} entries missing (first: {missing[0]!r})"] if missing else []) + \
                ([f"{len(extra)} unexpected (first: {extra[0]!r})"] if extra else [])
        raise error(f"checkpoint {path} does not fit {network}: {'; '.join(parts)}")
    for k, v in own.items():
        w = weights[k]
        if not isinstance(w, torch.Tensor) or w.shape != v.shape:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise error(f"checkpoint {path} does not fit {network}: {k!r} is {got} in the file, "
                        f"{tuple(v.shape)} in the network")
    model.load_state_dict(weights)
    return model
