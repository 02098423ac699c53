import json
import zlib

import numpy as np
import pytest

from deepsphere_gen._io import array_crc32, atomic_savefig, atomic_write, atomic_write_json


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    atomic_write(path, lambda fh: fh.write(b"first"))
    assert path.read_bytes() == b"first"

    def failing(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["a.bin"]  # no temporary file left


@pytest.mark.parametrize("name, magic", [("f.png", b"\x89PNG"), ("f.pdf", b"%PDF"), ("f.SVG", b"<?xml"), ("f", b"\x89PNG")])
def test_atomic_savefig_writes_the_suffixs_format_and_keeps_the_old_file_on_error(tmp_path, name, magic):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    path = tmp_path / name
    atomic_savefig(fig, path, dpi=20)
    assert path.read_bytes().startswith(magic)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        atomic_savefig(fig, path, not_a_savefig_option=1)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left
    plt.close(fig)


def test_atomic_write_json_refuses_nan(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"x": 1.5})
    assert json.loads(path.read_text()) == {"x": 1.5}
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert not (tmp_path / "bad.json").exists()


def test_interrupts_deferred_delivers_ctrl_c_after_the_block():
    import os
    import signal

    from deepsphere_gen._io import interrupts_deferred

    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("rest of the block ran")
    assert done == ["rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is before
    with interrupts_deferred():  # no signal: nothing raised
        done.append("again")
    assert done[-1] == "again"


def test_interrupts_deferred_holds_sigterm_too():
    """A SIGTERM during a checkpoint write (the commands raise KeyboardInterrupt on it) waits for the block's end."""
    import os
    import signal

    from deepsphere_gen._io import interrupts_deferred

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(("handler", signum)))
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("rest of the block ran")
        assert seen == ["rest of the block ran", ("handler", signal.SIGTERM)]
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, None)
        assert seen[-1] == ("handler", signal.SIGTERM)  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_interrupts_deferred_leaves_an_ignored_sigint_alone_and_still_delivers_sigterm():
    """A background job of a batch script ignores SIGINT: the block does not hold it (it stays ignored, so it cannot
    mask a later signal), and a SIGTERM received during the block reaches its previous handler afterwards."""
    import os
    import signal

    from deepsphere_gen._io import interrupts_deferred

    seen = []
    before_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    before_term = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with interrupts_deferred():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("rest of the block ran")
        assert seen == ["rest of the block ran", signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before_int)
        signal.signal(signal.SIGTERM, before_term)


def test_interrupts_deferred_delivers_sigterm_before_a_ctrl_c_received_first():
    """Both held signals are delivered, SIGTERM first: a Ctrl-C received before it does not swallow it."""
    import os
    import signal

    from deepsphere_gen._io import interrupts_deferred

    seen = []
    before_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    before_term = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGINT, before_int)
        signal.signal(signal.SIGTERM, before_term)


class _CtrlCWhilePickled:
    """Sends SIGINT to this process while torch.save pickles it (Ctrl-C in the middle of a write)."""

    def __reduce__(self):
        import os
        import signal

        from collections import OrderedDict

        os.kill(os.getpid(), signal.SIGINT)
        return (OrderedDict, ())


def test_ctrl_c_during_checkpoint_write_is_an_interrupt_after_a_complete_file(tmp_path):
    """torch.save turns a KeyboardInterrupt inside its writer into a RuntimeError; the checkpoint
    writer holds Ctrl-C until the file is in place, then raises KeyboardInterrupt."""
    import torch

    from deepsphere_gen.training import load_checkpoint, save_checkpoint

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 3, "w": torch.ones(1000), "x": _CtrlCWhilePickled()})
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_plain_permissions_under_the_umask(tmp_path, mask):
    """Files and data folders written atomically get what open()/mkdir would give (0o666/0o777 & ~umask),
    not mkstemp's/mkdtemp's owner-only 0o600/0o700."""
    import os
    import stat

    from deepsphere_gen.datasets._massmaps_cache import atomic_directory

    old = os.umask(mask)
    try:
        plain_file, plain_dir = tmp_path / "plain.txt", tmp_path / "plain-dir"
        plain_file.write_text("x")
        plain_dir.mkdir()
        atomic_write(tmp_path / "a.bin", lambda fh: fh.write(b"x"))
        atomic_write_json(tmp_path / "r.json", {"x": 1})
        with atomic_directory(tmp_path / "data") as tmp:
            (tmp / "metadata.json").write_text("{}")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(plain_file) == 0o666 & ~mask
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "r.json") == mode(plain_file)
    assert mode(plain_dir) == 0o777 & ~mask
    assert mode(tmp_path / "data") == mode(plain_dir)


@pytest.mark.parametrize("own", [0o600, 0o640, 0o664])
def test_atomic_writes_keep_an_existing_files_permissions(tmp_path, own):
    """Replacing a file keeps its permissions, as a plain open() does: a checkpoint the user set
    to 0o600 stays 0o600 at the next save (before: widened to 0o666 & ~umask, 0o644 under 022)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        for name, write in [("a.bin", lambda p: atomic_write(p, lambda fh: fh.write(b"new"))),
                            ("r.json", lambda p: atomic_write_json(p, {"x": 2}))]:
            path, plain = tmp_path / name, tmp_path / f"plain-{name}"
            for p in (path, plain):
                p.write_text("old")
                os.chmod(p, own)
            write(path)
            with open(plain, "w") as fh:
                fh.write("new")
            assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == own
            assert path.read_bytes() != b"old"
    finally:
        os.umask(old)


def test_array_crc32_is_zlib_of_the_c_order_bytes():
    """The checksum of the graph cache's stored arrays and of the benchmarks' results: zlib's CRC-32 of the bytes
    in C order, also of a strided view, and continuing a running CRC as zlib does."""
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = a[:, ::2]  # not contiguous
    assert array_crc32(view) == zlib.crc32(view.tobytes(order="C"))
    head, tail = a[:2], a[2:]
    assert array_crc32(tail, array_crc32(head)) == zlib.crc32(a.tobytes())


def test_plain_json_spells_out_what_strict_json_lacks():
    """One conversion for the experiments' JSON (inf spelt out: ``--ngal inf``) and the bench records (inf as
    null, an unknown type refused)."""
    import math

    import numpy as np
    import torch

    from deepsphere_gen._io import plain_json

    obj = {"a": math.inf, "b": [-np.inf, math.nan, np.float64(0.5), np.int64(3), np.bool_(True)], "c": (1, "x"),
           "d": np.arange(3), "e": torch.tensor([2.5]), 4: np.array([[1.0, np.inf]])}
    got = plain_json(obj, infinity=True)
    assert got == {"a": "inf", "b": ["-inf", None, 0.5, 3, True], "c": [1, "x"], "d": [0, 1, 2], "e": 2.5,
                   "4": [[1.0, "inf"]]}
    assert json.loads(json.dumps(got, allow_nan=False)) == got
    assert plain_json(obj)["a"] is None and plain_json(obj)["4"] == [[1.0, None]]
    assert plain_json({"p": object}, unknown=str) == {"p": str(object)}
    with pytest.raises(ValueError, match="JSON-serialisable"):
        plain_json({"p": object}, unknown=None)


def test_load_torch_file_keeps_the_message_of_a_failure_that_is_not_the_archives(tmp_path):
    """An intact archive whose loading fails for another reason (here the map_location raising, as a device
    out of memory would) is not called damaged: torch's message is kept (was "is damaged (RuntimeError)")."""
    import torch

    from deepsphere_gen._io import load_torch_file

    path = tmp_path / "c.pt"
    torch.save({"w": torch.zeros(3)}, path)

    def out_of_memory(storage, location):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nsecond line")

    with pytest.raises(ValueError) as err:
        load_torch_file(path, out_of_memory)
    assert str(err.value) == f"checkpoint {path} cannot be loaded (RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB)"
    assert torch.equal(load_torch_file(path)["w"], torch.zeros(3))  # the archive is intact


@pytest.mark.parametrize("location, match", [
    ("gpu", "^map_location: unknown device 'gpu'; valid devices here: cpu$"),
    ("cuda", "^map_location: device 'cuda' requested but CUDA is not available on this machine; valid devices here: cpu$"),
    ("cuda:3", "^map_location: device 'cuda:3' requested but CUDA is not available"),
])
def test_check_map_location_names_the_argument_and_the_valid_devices(monkeypatch, location, match):
    import torch

    from deepsphere_gen._devices import check_map_location

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same case on any machine
    with pytest.raises(ValueError, match=match):
        check_map_location(location)
    for ok in ("cpu", torch.device("cpu"), None, {"cuda:0": "cpu"}, lambda storage, location: storage):
        assert check_map_location(ok) is ok  # dicts and callables pass as they are



def _record_start(raw, info):
    """Offset in the zip bytes ``raw`` of the stored data of record ``info`` (after its local header)."""
    import struct

    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def _flip_byte_of(path, tensor):
    """Rewrite the ``torch.save`` zip ``path`` with one bit flipped in the middle of the stored data of ``tensor``
    (the record whose bytes are the tensor's; its CRC-32 in the zip left as written); returns the record's name."""
    import zipfile

    import torch

    data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        (info,) = [i for i in archive.infolist() if "/data/" in i.filename and archive.read(i) == data]
    assert info.compress_type == zipfile.ZIP_STORED  # torch.save stores records uncompressed
    start = _record_start(raw, info)
    assert raw[start: start + len(data)] == data
    raw[start + len(data) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    return info.filename.split("/", 1)[1]


def test_a_flipped_bit_in_a_saved_tensor_is_refused_as_damage(tmp_path):
    """torch.load does not check the CRC-32 the zip holds for each record, so one flipped bit inside a weight loaded
    silently (checked here: torch.load still returns the tensor, changed); the one reader of saved models and training
    checkpoints compares every record with its CRC-32 and refuses the file as damaged, naming it and the record.
    Files saved before (the same format: save_model's dict by plain torch.save, and in torch's legacy non-zip
    format) load as they did."""
    import torch

    from deepsphere_gen.models import HarmonicClassifier, load_model, save_model
    from deepsphere_gen.training import CheckpointError, load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = HarmonicClassifier(3, bandlimits=(4, 3), channels=(2, 3), hidden=(8,)).eval()
    key = "readout.mlp.0.weight"
    weight = model.state_dict()[key]
    path = save_model(tmp_path / "net.pt", model)
    assert torch.equal(load_model(path).state_dict()[key], weight)
    record = _flip_byte_of(path, weight)
    silently = torch.load(path, weights_only=True)["state_dict"][key]
    assert silently.shape == weight.shape and (silently != weight).sum() == 1  # torch: no error
    with pytest.raises(ValueError) as err:
        load_model(path)
    assert str(err.value) == (f"checkpoint {path} is damaged: its record {record!r} does not match the CRC-32 checksum "
                              "written with it (the file changed after it was saved); use an intact copy")

    ckpt = save_checkpoint(tmp_path / "ckpt.pt", {"model": model.state_dict(), "epoch": 3})
    assert load_checkpoint(ckpt)["epoch"] == 3
    record = _flip_byte_of(ckpt, weight)
    with pytest.raises(CheckpointError, match=f"^checkpoint {ckpt} is damaged: its record {record!r} does not match"):
        load_checkpoint(ckpt)

    old = {"spec": model.spec.to_dict(), "state_dict": model.state_dict()}  # save_model's format, by hand
    for i, kwargs in enumerate([{}, {"_use_new_zipfile_serialization": False}]):
        torch.save(old, tmp_path / f"old{i}.pt", **kwargs)
        assert torch.equal(load_model(tmp_path / f"old{i}.pt").state_dict()[key], weight)


def test_a_flipped_bit_in_the_pickle_record_is_refused_as_damage(tmp_path):
    """A flipped bit in the pickle record (``data.pkl``) is damage, named as such: the CRC-32 check runs before
    torch.load (it ran after, so most such flips were reported as whatever the unpickler made of them: "holds objects
    other than tensors ... refused", torch's own errors).  Every byte of the record, one bit each; a file without
    damage still loads."""
    import zipfile

    import torch

    from deepsphere_gen._io import load_torch_file

    path = tmp_path / "c.pt"
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "epoch": 3, "name": "net"}, path)
    clean = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        (info,) = [i for i in archive.infolist() if i.filename.endswith("/data.pkl")]
    start = _record_start(clean, info)
    assert clean[start: start + info.file_size] == zipfile.ZipFile(path).read(info)
    for offset in range(info.file_size):
        raw = bytearray(clean)
        raw[start + offset] ^= 0x10
        path.write_bytes(bytes(raw))
        with pytest.raises(ValueError) as err:
            load_torch_file(path)
        assert str(err.value) == (f"checkpoint {path} is damaged: its record 'data.pkl' does not match the CRC-32 "
                                  "checksum written with it (the file changed after it was saved); use an intact copy")
    path.write_bytes(clean)
    assert load_torch_file(path)["epoch"] == 3
