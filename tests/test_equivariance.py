import pytest
import torch
from scipy.spatial.transform import Rotation

from deepsphere_gen.equivariance import assert_equivariant, equivariance_error, flatten_batch


def _rotations(n, seed=0):
    return [torch.tensor(r, dtype=torch.float64) for r in Rotation.random(n, random_state=seed).as_matrix()]


def _rotate_vectors(x, R):
    """x (batch, points, 3) -> rotated vector field at the same points (a degree-1 signal)."""
    return x @ R.T


@pytest.fixture
def vectors():
    return torch.randn(4, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_identity_and_norm_scaling_are_equivariant(vectors):
    res = assert_equivariant(lambda x: x, vectors, _rotations(5), _rotate_vectors)
    assert res.max < 1e-15
    op = lambda x: x * x.norm(dim=-1, keepdim=True)  # noqa: E731
    res = equivariance_error(op, vectors, _rotations(5), _rotate_vectors)
    assert res.max < 1e-14 and res.errors.shape == (5, 4)


def test_fixed_permutation_is_not_equivariant(vectors):
    op = lambda x: x[..., [1, 2, 0]]  # noqa: E731  a fixed relabelling of the axes
    res = equivariance_error(op, vectors, _rotations(8), _rotate_vectors)
    assert res.mean > 0.1
    assert res.mean_sq == pytest.approx(float((res.errors**2).mean()))
    with pytest.raises(AssertionError, match="equivariance error"):
        assert_equivariant(op, vectors, _rotations(3), _rotate_vectors)


def test_flatten_nested_outputs():
    class Sig:
        fragments = [torch.ones(2, 1, 1, 1), torch.ones(2, 1, 3, 2)]

    assert flatten_batch(Sig()).shape == (2, 7)
    assert flatten_batch({"a": torch.ones(2, 3), "b": torch.ones(2, 1)}).shape == (2, 4)


def test_zero_output_is_an_error(vectors):
    with pytest.raises(ValueError, match="zero"):
        equivariance_error(lambda x: 0 * x, vectors, _rotations(1), _rotate_vectors)
