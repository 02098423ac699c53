import json

import pytest

from deepsphere_gen._io import atomic_write, atomic_write_json


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


def test_atomic_write_json_refuses_nan(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"x": 1.5})
    assert json.loads(path.read_text()) == {"x": 1.5}
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert not (tmp_path / "bad.json").exists()
