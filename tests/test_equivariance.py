import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from deepsphere_gen.equivariance import EquivarianceResult, assert_equivariant, equivariance_error, flatten_batch


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


def test_result_prints_its_count_and_summary():
    res = EquivarianceResult(torch.tensor([[1e-3, 2e-3, 6e-3]], dtype=torch.float64))
    assert repr(res) == "EquivarianceResult(n=3, mean=0.003, mean_sq=1.4e-05, max=0.006)"
    assert str(res) == repr(res)
    assert repr(EquivarianceResult(torch.zeros(3, 0, dtype=torch.float64))) == "EquivarianceResult(n=0)"


def test_flatten_nested_outputs():
    class Sig:
        fragments = [torch.ones(2, 1, 1, 1), torch.ones(2, 1, 3, 2)]

    assert flatten_batch(Sig()).shape == (2, 7)
    assert flatten_batch({"a": torch.ones(2, 3), "b": torch.ones(2, 1)}).shape == (2, 4)


def test_zero_output_is_an_error(vectors):
    with pytest.raises(ValueError, match="zero"):
        equivariance_error(lambda x: 0 * x, vectors, _rotations(1), _rotate_vectors)


def _first_coordinate(x):
    return x[:, :, 0]  # not rotation invariant: the first coordinate of each vector


def _unrotated(y, R):
    return y


def test_invariance_relative_to_the_spread_ignores_a_constant_offset(vectors):
    """relative_to="spread": ||op(R x) - op(x)|| / s, s^2 the sample variance of op(x) over the batch (numpy,
    ddof=1) summed over the entries.  Adding a constant to the output changes nothing (relative to ||op(x)||
    a large offset made any operator look invariant); a constant output, or one input, is an error, not a 0."""
    rots = _rotations(3)
    res = equivariance_error(_first_coordinate, vectors, rots, _rotate_vectors, _unrotated, relative_to="spread")
    y = _first_coordinate(vectors).numpy()
    s = np.sqrt(y.var(axis=0, ddof=1).sum())
    want = [np.linalg.norm(_first_coordinate(_rotate_vectors(vectors, R)).numpy() - y, axis=1) / s for R in rots]
    np.testing.assert_allclose(res.errors.numpy(), np.stack(want), rtol=1e-13)
    assert res.mean > 0.1
    shifted = equivariance_error(lambda x: _first_coordinate(x) + 1e6, vectors, rots, _rotate_vectors, _unrotated,
                                 relative_to="spread")
    np.testing.assert_allclose(shifted.errors.numpy(), res.errors.numpy(), rtol=1e-8)
    by_norm = equivariance_error(lambda x: _first_coordinate(x) + 1e6, vectors, rots, _rotate_vectors, _unrotated)
    assert by_norm.mean < 1e-5 * res.mean  # the offset's effect on the other normalisation
    with pytest.raises(ValueError, match="same for all 4 inputs"):
        equivariance_error(lambda x: torch.full((len(x), 3), 5.0, dtype=x.dtype) + 0 * x[:, :3, 0], vectors, rots,
                           _rotate_vectors, _unrotated, relative_to="spread")
    with pytest.raises(ValueError, match=">= 2 inputs, got 1"):
        equivariance_error(_first_coordinate, vectors[:1], rots, _rotate_vectors, _unrotated, relative_to="spread")
    with pytest.raises(ValueError, match="relative_to must be"):
        equivariance_error(_first_coordinate, vectors, rots, _rotate_vectors, _unrotated, relative_to="norm")


def test_assert_equivariant_relative_to_the_spread_checks_an_invariant_model(vectors):
    """assert_equivariant(..., relative_to="spread") on an invariant model (a linear head on the vectors' norms,
    with a large bias) passes at the float64 default tolerance; a non-invariant one with the same bias fails it, though
    relative to its outputs' norm the bias would let it pass."""
    torch.manual_seed(0)
    head = torch.nn.Linear(7, 3).double()
    with torch.no_grad():
        head.bias.fill_(1e6)
    rots = _rotations(3)
    res = assert_equivariant(lambda x: head(x.norm(dim=-1)), vectors, rots, _rotate_vectors, _unrotated,
                             relative_to="spread")
    assert res.errors.shape == (3, 4)  # 3 rotations x 4 inputs, each below 1e-12 of the spread
    biased = lambda x: _first_coordinate(x) + 1e6  # noqa: E731
    assert_equivariant(biased, vectors, rots, _rotate_vectors, _unrotated, tol=1e-5)
    with pytest.raises(AssertionError, match="equivariance error"):
        assert_equivariant(biased, vectors, rots, _rotate_vectors, _unrotated, tol=1e-5, relative_to="spread")


# --------------------------------------------------------------- public map / signal helpers
from deepsphere_gen.equivariance import assert_map_equivariant, map_equivariance_error  # noqa: E402
from deepsphere_gen.graph import build_graph  # noqa: E402
from deepsphere_gen.harmonic import MapRotator, SHT, random_rotations, rotate_map  # noqa: E402
from deepsphere_gen.nn import ChebConv, GeneralizedSignal  # noqa: E402
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling  # noqa: E402


def test_map_rotator_is_rotate_map_and_exact_on_gauss_legendre():
    """A band-limited map on a GL grid: rotating by alpha about z equals shifting every ring's
    phi, i.e. the coefficients get the z rotation; MapRotator agrees with rotate_map."""
    L = 6
    s = GaussLegendreSampling(L)
    sht = SHT(s, L, dtype=torch.float64)
    x = sht.inverse(torch.randn(2, L * L, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    R = random_rotations(1, seed=3)[0]
    rot = MapRotator(s, L)
    torch.testing.assert_close(rot(x, R), rotate_map(x, s, R, L, iterations=10), rtol=0, atol=0)
    # the inverse rotation undoes it (exact grid: float64 precision)
    back = rot(rot(x, R), torch.stack([-R[2], -R[1], -R[0]]))
    torch.testing.assert_close(back, x, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="positive integer"):
        MapRotator(s, 0)


def test_assert_map_equivariant_exact_layer_on_gauss_legendre():
    """Degree-wise scaling of the coefficients commutes with every rotation (exactly, GL grid)."""
    L = 5
    s = GaussLegendreSampling(L)
    sht = SHT(s, L, dtype=torch.float64)
    gain = torch.cat([torch.full((2 * l + 1,), 1.0 / (1 + l), dtype=torch.float64) for l in range(L)])
    layer = lambda m: sht.inverse(sht(m) * gain[:, None])  # noqa: E731
    res = assert_map_equivariant(layer, s, L=L, rotations=4, channels=2, tol=1e-12)
    assert res.errors.shape == (4, 2)
    # a non-equivariant layer (a fixed pixel permutation) fails the same check
    perm = torch.randperm(s.npix, generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="mean equivariance error"):
        assert_map_equivariant(lambda m: m[:, perm], s, L=L, tol=1e-3)


def test_map_equivariance_of_a_graph_conv_between_floor_and_published_scale():
    """A ChebConv on the HEALPix kNN graph: above the transform floor (identity layer), well
    below 1 for smooth maps (L = nside), as DeepSphere's low-degree figures."""
    nside, L = 8, 8
    s = HealpixSampling(nside)
    conv = ChebConv(1, 2, 3, build_graph(s, k=20, cache=False), dtype=torch.float64)
    floor = map_equivariance_error(lambda m: m, s, L=L, rotations=2).mean
    res = map_equivariance_error(conv, s, L=L, L_out=2 * nside, rotations=2)
    assert floor < 1e-6 and 10 * floor < res.mean < 0.5


def test_assert_equivariant_defaults_for_signals():
    """GeneralizedSignal input: rotate() is the default action, an int draws random rotations."""
    g = torch.Generator().manual_seed(0)
    x = GeneralizedSignal([torch.randn(2, 3, 2 * l + 1, 2, dtype=torch.float64, generator=g) for l in range(4)])
    res = assert_equivariant(lambda s: GeneralizedSignal([2.0 * f for f in s.fragments]), x, rotations=3)
    assert res.errors.shape == (3, 2) and res.max < 1e-14
    with pytest.raises(TypeError, match="rotate_input"):
        assert_equivariant(lambda v: v, torch.zeros(2, 3), rotations=1)


def test_map_invariance_of_a_global_mean_and_of_a_half_sky_mean():
    """invariant=True compares outputs unrotated: the global mean of a ChebConv output is invariant up
    to HEALPix quadrature (small error), the mean over the first half of the pixels is not."""
    s = HealpixSampling(8)
    torch.manual_seed(0)
    conv = ChebConv(1, 3, 3, build_graph(s, k=20, cache=False), dtype=torch.float64)
    R = random_rotations(2, seed=11)
    good = map_equivariance_error(lambda m: conv(m).mean(dim=1), s, L=8, rotations=R, invariant=True)
    bad = map_equivariance_error(lambda m: conv(m)[:, : s.npix // 2].mean(dim=1), s, L=8, rotations=R,
                                 invariant=True)
    assert good.errors.shape == (2, 8) and good.max < 0.05 and bad.mean > 0.5  # 8 inputs: the default
    assert_map_equivariant(lambda m: conv(m).mean(dim=1), s, L=8, rotations=R, invariant=True, tol=0.05)
    # without invariant=True a non-map output is named, with the option to use
    with pytest.raises(ValueError, match=r"output has shape \(2, 3\).*invariant=True"):
        map_equivariance_error(lambda m: conv(m).mean(dim=1), s, L=8, rotations=1)


def test_map_equivariance_errors_name_the_layer_output_and_the_dtype_argument():
    s = HealpixSampling(4)
    conv = ChebConv(1, 2, 3, build_graph(s, k=8, cache=False), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"op\(x\), the operator's output, is not finite: 768 NaN"):
        map_equivariance_error(lambda m: conv(m) * float("nan"), s, L=4, rotations=1)
    conv32 = ChebConv(1, 2, 3, build_graph(s, k=8, cache=False), dtype=torch.float32)
    with pytest.raises(ValueError, match=r"computes in torch.float32 but this helper's inputs are torch.float64 "
                                         r"\(its dtype= argument\): pass dtype=torch.float32 or leave it out"):
        map_equivariance_error(conv32, s, L=4, rotations=1, dtype=torch.float64)
    res = map_equivariance_error(conv32, s, L=4, L_out=8, rotations=1, dtype=torch.float32)
    assert 0 < res.mean < 0.5
    # by default the inputs take the layer's dtype (its parameters', else its buffers')
    assert torch.equal(map_equivariance_error(conv32, s, L=4, L_out=8, rotations=1).errors, res.errors)
    ident32 = SHT(s, 4)  # float32 buffers only: maps -> coefficients, an invariant-shaped output
    assert map_equivariance_error(ident32, s, L=4, rotations=1, invariant=True).mean > 0


def test_map_equivariance_error_keeps_the_layers_error_when_the_dtype_is_not_the_problem():
    """A float32 conv built at nside 4 measured on nside-8 maps: the layer's own pixel-count error,
    whatever dtype= says (not advice to change the dtype, which would not help)."""
    conv32 = ChebConv(1, 2, 3, build_graph(HealpixSampling(4), k=8, cache=False), dtype=torch.float32)
    for dtype in (None, torch.float32, torch.float64):
        with pytest.raises(ValueError, match=r"^input has 768 pixels, expected 192 \(number of nodes"):
            map_equivariance_error(conv32, HealpixSampling(8), L=4, rotations=1, dtype=dtype)


def test_map_invariance_of_a_float32_classifier_in_its_own_dtype():
    """README's call on a default (float32) DeepSphereClassifier runs without dtype=, in float32."""
    from deepsphere_gen.models import DeepSphereClassifier

    torch.manual_seed(0)
    model = DeepSphereClassifier(4, 1, channels=(2,), n_classes=3, k=8, cache=False).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    res = map_equivariance_error(model, HealpixSampling(4), L=4, rotations=2, invariant=True)
    assert torch.equal(res.errors, map_equivariance_error(model, HealpixSampling(4), L=4, rotations=2,
                                                          invariant=True, dtype=torch.float32).errors)
    assert 0 < res.mean < 1


def test_classifier_invariance_does_not_depend_on_its_heads_bias():
    """The figure of map_equivariance_error(..., invariant=True) is relative to the logits' spread over the
    inputs: the same weights with the head's bias moved by 1e3 give the same figure (relative to the logits'
    norm it fell 1e3-fold: any classifier looked invariant with a large enough bias)."""
    from deepsphere_gen.models import DeepSphereClassifier

    torch.manual_seed(0)
    model = DeepSphereClassifier(4, 1, channels=(4,), n_classes=3, k=8, cache=False, dtype=torch.float64).eval()
    s, R = HealpixSampling(4), random_rotations(2, seed=3)
    before = map_equivariance_error(model, s, L=4, rotations=R, invariant=True)
    with torch.no_grad():
        model.head.bias.add_(1e3)
    after = map_equivariance_error(model, s, L=4, rotations=R, invariant=True)
    np.testing.assert_allclose(after.errors.numpy(), before.errors.numpy(), rtol=1e-9)
    assert before.errors.shape == (2, 8) and 1e-3 < before.mean < 2
