"""The README's runnable Python blocks run as written, print the figures they state, and
its healpy Rotator mapping is the rotation we apply.

A block runs when the line before its opening fence is ``<!-- readme-test: runs -->``
(invisible on GitHub); a line ``print(...)  # prints X`` must print X (5 % relative;
values below 1e-8, e.g. a transform floor, within a factor 10).  Each block runs in a
fresh namespace with an empty graph cache.
"""
import contextlib
import io
import math
import re
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import healpy_alm_to_real, random_rotations, real_to_healpy_alm, rotate_coefficients

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- readme-test: runs -->"


def _blocks() -> list[tuple[int, str]]:
    """(line number, code) of every marked ```python block."""
    lines = README.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == MARKER:
            assert lines[i + 1].strip() == "```python", f"README line {i + 1}: the marker must precede a ```python fence"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
            out.append((i + 3, "\n".join(lines[i + 2:end])))
    return out


def test_readme_has_runnable_blocks():
    assert len(_blocks()) >= 2  # the graph backend's and the equivariance snippet


@pytest.mark.parametrize("line,code", _blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_readme_block_runs_and_prints_what_it_says(line, code, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path))
    stated = [float(m.group(1)) for m in re.finditer(r"#\s*prints\s+([-+0-9.eE]+)", code)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), torch.random.fork_rng():
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme"})
    printed = [float(v) for v in out.getvalue().split()]
    assert len(printed) == len(stated), (printed, stated)
    for got, want in zip(printed, stated):
        if abs(want) < 1e-8:
            assert abs(math.log10(abs(got) / abs(want))) < 1, (got, want)
        else:
            assert got == pytest.approx(want, rel=0.05), (got, want)


def test_readme_healpy_rotator_mapping():
    """The README's `hp.Rotator(...)` for our ZYZ angles (a, b, g), evaluated as written,
    rotates healpy alm like rotate_coefficients (one random rotation)."""
    text = README.read_text()
    found = re.findall(r"`(hp\.Rotator\([^`]*\))`", text)
    assert len(found) == 1, found
    L = 10
    r = np.random.default_rng(3).normal(size=L * L)
    angles = random_rotations(1, seed=5)[0]
    a, b, g = angles.tolist()
    rot = eval(found[0], {"hp": hp, "a": a, "b": b, "g": g})
    ours = rotate_coefficients(torch.as_tensor(r).reshape(1, L * L, 1), angles)[0, :, 0].numpy()
    theirs = healpy_alm_to_real(rot.rotate_alm(real_to_healpy_alm(r, L)), L)
    np.testing.assert_allclose(np.asarray(theirs), ours, atol=1e-10)
