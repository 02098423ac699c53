"""The equivariance table of the spherical-CNN family reproduces the published pattern."""
import torch

from deepsphere_gen.experiments.classic_table import PUBLISHED, classic_equivariance_table, format_table


def test_pattern_float32():
    rows = classic_equivariance_table(L=5, channels=2, batch=2, n_rotations=2)
    assert [r["layer"] for r in rows] == list(PUBLISHED)
    by = {r["layer"]: r["mean"] for r in rows}
    for name in list(PUBLISHED)[:4]:  # convolutions and the tensor-product layer: float32 level
        assert by[name] < 2e-6, (name, by[name])
    for name in ("S2 ReLU", "SO(3) ReLU"):  # pointwise activations on a grid: far from it
        assert by[name] > 1e-2, (name, by[name])
    text = format_table(rows)
    assert "SO(3) ReLU" in text and "3.7e-01" in text


def test_float64_convolutions_at_float64_level():
    rows = classic_equivariance_table(L=4, channels=2, batch=1, n_rotations=1, dtype=torch.float64)
    assert all(r["mean"] < 1e-12 for r in rows[:4])
