"""Input value checks across models and layers: NaN / inf / UNSEEN still raise a ValueError
naming the problem, and a forward checks each user input exactly once (one host sync).

The counts come from ``tests._syncs.count_syncs`` on CPU: calls of the value check and every
tensor -> Python conversion (each one a wait for the device on a GPU).
"""
import copy
import math
import sys

import pytest
import torch

from deepsphere_gen._validation import UNSEEN, check_finite
from deepsphere_gen.harmonic import SHT, SO3Transform
from deepsphere_gen.models import DeepSphereClassifier, DeepSphereRegressor, HarmonicClassifier, SphericalUNet
from deepsphere_gen.models.classic import CobbHybrid, CohenS2CNN, EstevesS2CNN, KondorCGNet
from deepsphere_gen.models.hybrid import HybridClassifier
from deepsphere_gen.nn import ChebConv, HealpixAvgPool, HealpixMaxPool, MapToSignal, S2InputLayer
from deepsphere_gen.nn._signal import GeneralizedSignal
from deepsphere_gen.sampling import GaussLegendreSampling, McEwenWiauxSampling
from deepsphere_gen.sampling.so3 import SOFTSampling
from tests._syncs import count_syncs

BAD = {"nan": float("nan"), "inf": -math.inf, "unseen": UNSEEN}
MW = McEwenWiauxSampling(6)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (model, clean input): small versions of every model of the package."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("graphs")
    kw = dict(K=3, k=8, cache_dir=d)
    mw = torch.randn(2, MW.npix, 1)
    return {
        "cohen": (CohenS2CNN(bandlimits=(6, 4, 3), channels=(3, 4), sampling=MW), mw),
        "cohen_bn": (CohenS2CNN(bandlimits=(6, 4, 3), channels=(3, 4), sampling=MW, batchnorm=True), mw),
        "esteves": (EstevesS2CNN(bandlimits=(6, 4, 2), channels=(3, 4), n_anchors=2, sampling=MW), mw),
        "kondor": (KondorCGNet(L=3, tau=2, n_layers=2, hidden=(8,), sampling=MW), mw),
        "cobb": (CobbHybrid(bandlimits=(6, 4, 3, 2, 1), channels=(3, 4, 4, 5), hidden=(8,), sampling=MW), mw),
        "harmonic_map": (HarmonicClassifier(3, bandlimits=(6, 4), channels=(2, 3), sampling=MW), mw),
        "harmonic_coeffs": (HarmonicClassifier(3, bandlimits=(6, 4), channels=(2, 3)), torch.randn(2, 36, 1)),
        "deepsphere_classifier": (DeepSphereClassifier(4, 2, channels=(4, 6), **kw), torch.randn(2, 192, 2)),
        "deepsphere_regressor": (DeepSphereRegressor(8, 1, channels=(3, 4, 5), pool_levels=(2, 0, 1), pool="avg", **kw),
                                 torch.randn(2, 768, 1)),
        "deepsphere_partial": (DeepSphereClassifier(4, 1, channels=(3, 4), indices=list(range(96)), **kw),
                               torch.randn(2, 96, 1)),
        "unet": (SphericalUNet(4, 2, 3, channels=(4, 6), convs_per_level=2, **kw), torch.randn(2, 192, 2)),
        "unet_max": (SphericalUNet(4, 2, 3, channels=(4, 6), unpool="max", **kw), torch.randn(2, 192, 2)),
        "hybrid": (HybridClassifier(8, 1, 3, graph_channels=(3, 4), K=3, k=8, bandlimits=(4, 3), harmonic_channels=(4,),
                                    hidden=(8,), cache_dir=d), torch.randn(2, 768, 1)),
    }


MODELS = ["cohen", "cohen_bn", "esteves", "kondor", "cobb", "harmonic_map", "harmonic_coeffs", "deepsphere_classifier",
          "deepsphere_regressor", "deepsphere_partial", "unet", "unet_max", "hybrid"]


@pytest.mark.parametrize("name", MODELS)
def test_model_forward_checks_its_input_once(models, name):
    model, x = models[name]
    for mode in (model.train, model.eval):
        mode()
        with count_syncs() as n:
            y = model(x)
        assert torch.isfinite(y).all()
        # before: Cohen 11 syncs, Cobb 11, Esteves 6, Hybrid 5, UNet 8 (one per ChebConv + the model's)
        assert n["check_finite"] == 1, dict(n)
        assert n["host"] == 1, dict(n)  # no other host synchronisation in the forward


@pytest.mark.parametrize("name", ["kondor", "harmonic_coeffs"])
def test_signal_input_is_checked_when_built_not_in_forward(models, name):
    model = models[name][0]
    L = model.input.L
    with count_syncs() as n:
        sig = GeneralizedSignal([torch.randn(2, model.input.channels, 2 * l + 1, model.input.tau) for l in range(L)])
        built = dict(n)
        model(sig)
    assert built == {"check_finite": 1, "host": 1}  # one reduction over all L fragments
    assert dict(n) == built  # the forward adds none


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", MODELS)
def test_model_rejects_nan_inf_unseen(models, name, bad):
    model, x = models[name]
    x = x.clone()
    x[1, 3, 0] = BAD[bad]
    with pytest.raises(ValueError, match="1 NaN/inf/UNSEEN value"):
        model(x)


@pytest.mark.parametrize("name", MODELS)
def test_model_names_a_numpy_input(models, name):
    """A numpy map (a healpy user's) is named, not an AttributeError "'numpy.ndarray' object
    has no attribute 'dim'"."""
    model, x = models[name]
    with pytest.raises(ValueError, match="must be a torch tensor, got ndarray"):
        model(x.numpy())


def test_layers_name_a_numpy_input(models):
    conv = next(m for m in models["deepsphere_classifier"][0].modules() if isinstance(m, ChebConv))
    x = torch.randn(2, 192, 2).numpy()
    for layer in (conv, HealpixMaxPool(1), HealpixAvgPool(1), S2InputLayer(4, 1, 2, sampling=MW)):
        with pytest.raises(ValueError, match="must be a torch tensor, got ndarray"):
            layer(x)


def test_hybrid_graph_features_checks_once(models):
    model, x = models["hybrid"]
    with count_syncs() as n:
        model.graph_features(x)
    assert dict(n) == {"check_finite": 1, "host": 1}


# ---- layers: checked by default, ``check_input=False`` skips only the value check ----------

def _layers():
    gl = GaussLegendreSampling(4)
    lap = torch.eye(12).to_sparse_coo()
    return {
        "ChebConv": (lambda c: ChebConv(1, 2, 2, lap, check_input=c), torch.randn(2, 12, 1)),
        "SHT": (lambda c: SHT(gl, 4, check_input=c), torch.randn(2, gl.npix, 1)),
        "SHT.inverse": (lambda c: SHT(gl, 4, check_input=c).inverse, torch.randn(2, 16, 1)),
        "MapToSignal": (lambda c: MapToSignal(gl, 4, 1, check_input=c), torch.randn(2, gl.npix, 1)),
        "S2InputLayer": (lambda c: S2InputLayer(4, 1, 2, sampling=gl, check_input=c), torch.randn(2, gl.npix, 1)),
        "S2InputLayer(coeffs)": (lambda c: S2InputLayer(4, 1, 2, check_input=c), torch.randn(2, 16, 1)),
        "SO3Transform": (lambda c: SO3Transform(SOFTSampling(3), check_input=c), torch.randn(2, SOFTSampling(3).npoints, 1)),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_layer_value_check_and_its_switch(name):
    make, x = _layers()[name]
    checked, layer = make(True), make(False)
    with count_syncs() as n:
        checked(x)
    assert dict(n) == {"check_finite": 1, "host": 1}  # bridge / input layer: not again in their SHT
    x[0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        checked(x)
    with count_syncs() as n:
        layer(x)  # no value check, no sync: NaN goes through
    assert n["host"] == 0 and n["check_finite"] in (0, 1)  # at most a call that returns at once
    with pytest.raises(ValueError, match="pixels|shaped|points|rows"):
        layer(x[:, :-1])  # shape checks stay


def test_so3_inverse_checks_all_degrees_at_once():
    L = 5
    T = SO3Transform(SOFTSampling(L))
    frags = [torch.randn(2, 3, 2 * l + 1, 2 * l + 1, dtype=torch.float64) for l in range(L)]
    with count_syncs() as n:
        T.inverse(frags)
    assert dict(n) == {"check_finite": 1, "host": 1}  # was L
    frags[3][1, 2, 0, 4] = UNSEEN
    with pytest.raises(ValueError, match="SO\\(3\\) fragment l=3 has 1 NaN/inf/UNSEEN"):
        T.inverse(frags)


def test_rotate_checks_the_angles_once():
    sig = GeneralizedSignal([torch.randn(1, 2, 2 * l + 1, 1) for l in range(6)])
    with count_syncs() as n:
        sig.rotate(torch.tensor([0.1, 0.2, 0.3]))
    assert dict(n) == {"host": 1}  # was one per degree (+1)
    with pytest.raises(ValueError, match="NaN or inf"):
        sig.rotate(torch.tensor([0.1, float("nan"), 0.3]))


def test_check_finite_many_tensors_one_sync():
    a, b = torch.randn(3, 4), torch.randn(5)
    with count_syncs() as n:
        check_finite([a, torch.zeros(0), torch.arange(3), b], "part")
    assert dict(n) == {"host": 1}
    b[2] = math.inf
    with pytest.raises(ValueError, match=r"part\[3\] has 1 NaN/inf/UNSEEN"):
        check_finite([a, torch.zeros(0), torch.arange(3), b], "part")
    with pytest.raises(ValueError, match="second has 2 "):
        check_finite([a, torch.tensor([float("nan"), UNSEEN])], ["first", "second"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, UNSEEN, -UNSEEN])
def test_check_finite_each_kind_of_bad_value(dtype, bad):
    x = torch.zeros(2, 7, 3, dtype=torch.float64)
    x[1, 4, 2] = bad
    check_finite(torch.full((2, 7, 3), 1e28 if dtype != torch.float16 else 6e4, dtype=dtype))  # large but finite
    if dtype == torch.float16 and abs(bad) == -UNSEEN:
        return  # UNSEEN is inf in half precision: covered by the inf cases
    with pytest.raises(ValueError, match="has 1 NaN/inf/UNSEEN"):
        check_finite(x.to(dtype))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["cohen", "esteves", "cobb", "harmonic_map", "deepsphere_classifier", "unet", "hybrid"])
def test_cuda_forward_syncs_only_in_the_input_check(models, name, monkeypatch):
    model, x = models[name]
    model, x = copy.deepcopy(model).cuda(), x.cuda()
    model(x)  # warm-up: tables cached per device, scratch buffers
    torch.cuda.synchronize()
    calls = []
    original = check_finite

    def allowed(*args, **kwargs):  # the one permitted synchronisation
        calls.append(1)
        torch.cuda.set_sync_debug_mode("default")
        try:
            return original(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("deepsphere_gen") and getattr(mod, "check_finite", None) is original:
            monkeypatch.setattr(mod, "check_finite", allowed)
    torch.cuda.set_sync_debug_mode("error")
    try:
        model(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(calls) == 1


def test_integer_checks_name_the_setting():
    import numpy as np

    from deepsphere_gen._validation import check_nonnegative_int, check_positive_int

    assert check_nonnegative_int(0, "n") == 0 and check_positive_int(np.int64(2), "n") == 2
    assert type(check_nonnegative_int(4.0, "n")) is int
    for bad in (-1, 0.5, True, "1", None, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"n must be a non-negative integer, got {bad!r}"):
            check_nonnegative_int(bad, "n")
    for bad in (0, -1, 1.5, False, float("inf")):  # inf raised an OverflowError
        with pytest.raises(ValueError, match=f"n must be a positive integer, got {bad!r}"):
            check_positive_int(bad, "n")


@pytest.mark.parametrize("value, off", [("0", True), (" Off ", True), ("false", True), ("no", True), ("1", False),
                                        ("", False), (None, False)])
def test_environment_switches_share_one_spelling(monkeypatch, value, off):
    """The compiled-kernel switch and the graph cache's stored-values switch read 0/false/no/off alike
    (the kernel switch took only "0")."""
    from deepsphere_gen.graph import _cache
    from deepsphere_gen.nn import _cheb_native

    for name in (_cheb_native.ENV_VAR, _cache.VALUES_ENV_VAR):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert _cache.values_cached() is not off
    if off:
        assert _cheb_native._library() is None


def test_healpix_ordering_checks_share_one_spelling(tmp_path):
    """The mask order of HealpixSampling, the SHT's map order and the FITS reader's ordering (and header) are
    checked by one function: any case accepted (as each did before), the refusal names the setting, the value as
    given and the accepted values; only the FITS reader takes "any"."""
    import healpy as hp
    import numpy as np

    from deepsphere_gen._validation import check_healpix_order
    from deepsphere_gen.datasets import check_fits_ordering, read_healpix_fits
    from deepsphere_gen.harmonic._sht_geometry import RingGeometry
    from deepsphere_gen.sampling import HealpixSampling

    assert [check_healpix_order(o) for o in ("nested", "Ring")] == ["NESTED", "RING"]
    assert check_healpix_order("any", allow_any=True) == "ANY"
    nside, L = 2, 4
    S = HealpixSampling(nside)
    ring_mask = np.zeros(S.npix, bool)
    ring_mask[:5] = True  # RING pixels 0..4: the 4 polar pixels of the first ring and one of the second
    assert np.array_equal(HealpixSampling(nside, mask=ring_mask, order="ring").indices,
                          np.sort(hp.ring2nest(nside, np.arange(5))))
    assert RingGeometry.from_sampling(S, L, "ring").order is None
    assert np.array_equal(RingGeometry.from_sampling(S, L, "nested").order, hp.ring2nest(nside, np.arange(S.npix)))
    f = tmp_path / "ring.fits"
    m = np.arange(S.npix, dtype=np.float64)
    hp.write_map(str(f), m, nest=False, dtype=np.float64)
    assert np.array_equal(read_healpix_fits(f, nside, ordering="ring"), hp.reorder(m, r2n=True))
    assert np.array_equal(read_healpix_fits(f, nside, ordering="Any"), hp.reorder(m, r2n=True))
    assert check_fits_ordering(" ring ", f, "Ring") == "RING"
    two = "'NESTED' or 'RING' (case-insensitive)"
    three = "'NESTED', 'RING' or 'ANY' (case-insensitive)"
    for call, message in [
        (lambda: HealpixSampling(nside, mask=ring_mask, order="galactic"), f"order (of the mask) must be {two}, got 'galactic'"),
        (lambda: RingGeometry.from_sampling(S, L, "any"), f"order must be {two}, got 'any'"),
        (lambda: SHT(S, L, order=None), f"order must be {two}, got None"),
        (lambda: read_healpix_fits(f, nside, ordering="row"), f"ordering must be {three}, got 'row'"),
        (lambda: check_fits_ordering("RING", f, "row"), f"expected ordering must be {three}, got 'row'"),
        (lambda: check_fits_ordering(" healpix ", "f.fits", "any"), f"f.fits: the ORDERING header must be {two}, got 'healpix'"),
    ]:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message


@pytest.mark.parametrize("bad", [None, "8", True, 2.5, float("nan")])
def test_range_checked_integers_share_the_integer_test(bad):
    """The checks with their own range (spectra lmax >= 2, patch level, digit counts) use
    ``_validation.as_integer``: None or a string raised int()'s TypeError, not the check's message."""
    import numpy as np

    from deepsphere_gen.datasets import split_patches
    from deepsphere_gen.datasets._spectra import COSMOLOGIES, convergence_cl

    with pytest.raises(ValueError, match="lmax must be an integer >= 2"):
        convergence_cl(COSMOLOGIES[0], bad)
    with pytest.raises(ValueError, match="patch level must be an integer"):
        split_patches(np.zeros((1, 12 * 16)), bad)
