"""DeepSphere classifier / regressor / UNet: shapes, gradients, dtypes, state_dict, bad input."""
import copy
import io

import numpy as np
import pytest
import torch

from deepsphere_gen._validation import UNSEEN
from deepsphere_gen.graph import _pattern, build_graph
from deepsphere_gen.models import DeepSphereClassifier, DeepSphereRegressor, HybridClassifier, SphericalUNet
from deepsphere_gen.nn import ChebConv
from deepsphere_gen.sampling import HealpixSampling

NSIDE = 4  # 192 pixels


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


def _kw(cache_dir):
    return dict(K=3, k=8, cache_dir=cache_dir)


def _distinct_laplacians(model):
    """Number of distinct Laplacian storages (index and value arrays) over the model's ChebConvs."""
    return len({(c.laplacian.crow_indices().data_ptr(), c.laplacian.col_indices().data_ptr(),
                 c.laplacian.values().data_ptr()) for c in model.modules() if isinstance(c, ChebConv)})


@pytest.mark.parametrize("head", ["gap", "stats", "fc"])
def test_classifier_shapes_backward_and_graph(cache_dir, head):
    m = DeepSphereClassifier(NSIDE, 2, channels=(4, 6), n_classes=3, head=head, fc_hidden=(5,),
                             stats=("mean", "var", "max"), **_kw(cache_dir))
    x = torch.randn(5, 12 * NSIDE**2, 2)
    y = m(x)
    assert y.shape == (5, 3)
    y.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    # the first conv runs on the rescaled Laplacian of build_graph at this nside
    ref = build_graph(HealpixSampling(NSIDE), k=8, cache_dir=cache_dir).rescaled_laplacian()
    ours = m.blocks[0][0].conv.laplacian.to_dense().double().numpy()
    np.testing.assert_allclose(ours, ref.toarray(), atol=1e-6)
    assert m.out_sampling.nside == NSIDE // 4
    assert "total" in m.summary() and "parameters" in repr(m)


def test_regressor_and_pool_levels_per_block(cache_dir):
    m = DeepSphereRegressor(8, 1, channels=(3, 4, 5), n_outputs=2, pool_levels=(2, 0, 1), pool="avg", **_kw(cache_dir))
    assert m.out_sampling.nside == 1
    y = m(torch.randn(2, 768, 1))
    assert y.shape == (2, 2)
    with pytest.raises(ValueError, match="pooling levels"):
        DeepSphereRegressor(NSIDE, 1, channels=(3, 4, 5), pool_levels=1, **_kw(cache_dir))
    with pytest.raises(ValueError, match="one per block"):
        DeepSphereRegressor(NSIDE, 1, channels=(3, 4), pool_levels=(1, 1, 1), **_kw(cache_dir))


@pytest.mark.filterwarnings("ignore:partial-sky pooling")
@pytest.mark.parametrize("partial", [False, True])
def test_relu_after_max_pooling_is_the_same_bits(cache_dir, partial):
    """A max-pooling stage applies its ReLU after the pooling: outputs and gradients equal those of
    ReLU -> pool (the order every non-pooling stage keeps) bit for bit, in train and eval mode."""
    nside = 8
    indices = np.flatnonzero(np.arange(12 * nside**2) % 37 != 5) if partial else None  # holes: dropped pixels
    torch.manual_seed(0)
    m = DeepSphereRegressor(nside, 2, channels=(4, 6, 5), n_outputs=3, pool_levels=(1, 0, 1), head="stats",
                            stats=("mean", "std", "max"), indices=indices, **_kw(cache_dir))
    assert [type(s[-1]).__name__ for s in m.blocks] == ["ReLU", "_ConvBlock", "ReLU"]

    def reference(x):  # ReLU -> pool in every stage
        for stage in m.blocks:
            block = stage[0]
            x = torch.relu(block.norm(block.conv(x)))
            if len(stage) > 1:
                x = stage[1](x)
        return m.head(torch.cat([m._stat(x, t) for t in m.stats], dim=-1))

    x = torch.randn(4, m.npix, 2)
    for train in (True, False):
        m.train(train)
        outs = []
        for fn in (m, reference):
            m.zero_grad()
            y = fn(x)
            y.square().sum().backward()
            outs.append((y.detach(), [p.grad.clone() for p in m.parameters()]))
        assert torch.equal(outs[0][0], outs[1][0])
        assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


def test_double_and_state_dict_round_trip(cache_dir):
    torch.manual_seed(0)
    a = DeepSphereClassifier(NSIDE, 2, channels=(4, 6), **_kw(cache_dir))
    x = torch.randn(3, 192, 2)
    a.train()
    a(x)  # update BatchNorm running stats
    a.eval()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = DeepSphereClassifier(NSIDE, 2, channels=(4, 6), **_kw(cache_dir))
    b.load_state_dict(torch.load(buf))
    b.eval()
    torch.testing.assert_close(a(x), b(x))
    a64 = DeepSphereClassifier(NSIDE, 2, channels=(4, 6), dtype=torch.float64, **_kw(cache_dir))
    a64.load_state_dict(a.state_dict())
    a64.eval()
    y64 = a64(x.double())
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), a(x), rtol=1e-4, atol=1e-5)
    assert a.double()(x.double()).dtype == torch.float64


def _models(cache_dir, dtype=None):
    return {
        "classifier": (DeepSphereClassifier(NSIDE, 2, channels=(4, 6), dtype=dtype, **_kw(cache_dir)), 2),
        "unet": (SphericalUNet(NSIDE, 2, 3, channels=(4, 6), convs_per_level=2, dtype=dtype, **_kw(cache_dir)), 2),
    }


@pytest.mark.parametrize("name", ["classifier", "unet"])
def test_deepcopy_is_independent_and_equal(cache_dir, name):
    """copy.deepcopy (EMA/SWA copies, best-model snapshots) of models holding sparse Laplacians."""
    torch.manual_seed(0)
    m, cin = _models(cache_dir)[name]
    x = torch.randn(3, 192, cin)
    m(x).sum().backward()  # BatchNorm stats, kept work buffers
    m.eval()
    y = m(x)
    twin = copy.deepcopy(m)
    torch.testing.assert_close(twin(x), y, rtol=0, atol=0)
    best = copy.deepcopy(m.state_dict())  # the usual best-model snapshot
    fresh = _models(cache_dir)[name][0].eval()
    fresh.load_state_dict(best)
    torch.testing.assert_close(fresh(x), y, rtol=0, atol=0)
    assert _distinct_laplacians(fresh) == _distinct_laplacians(m)
    convs = [c for c in m.modules() if isinstance(c, ChebConv)]
    twins = [c for c in twin.modules() if isinstance(c, ChebConv)]
    for a, b in zip(convs, twins):
        assert b.laplacian.dtype == a.laplacian.dtype and b.laplacian.device == a.laplacian.device
        assert b.laplacian.values().data_ptr() != a.laplacian.values().data_ptr()
    assert _distinct_laplacians(twin) == _distinct_laplacians(m)  # sharing survives the copy
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(-1.5)
    torch.testing.assert_close(m(x), y, rtol=0, atol=0)  # the original is untouched


@pytest.mark.parametrize("unpool", ["repeat", "max"])
def test_unet_convs_share_one_laplacian_per_resolution(cache_dir, unpool):
    """7 convs on 2 resolutions hold 2 Laplacians, also after .double()/.float(), deepcopy, pickle, load."""
    torch.manual_seed(0)
    m = SphericalUNet(NSIDE, 2, 3, channels=(4, 6), convs_per_level=2, unpool=unpool, **_kw(cache_dir)).eval()
    assert sum(isinstance(c, ChebConv) for c in m.modules()) == 7
    assert _distinct_laplacians(m) == 2
    x = torch.randn(2, 192, 2, dtype=torch.float64)
    want = m(x.float()).double()
    m.double()
    assert _distinct_laplacians(m) == 2
    torch.testing.assert_close(m(x), want, rtol=1e-4, atol=1e-5)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    assert _distinct_laplacians(torch.load(buf, weights_only=False)) == 2
    m.float().double()
    assert _distinct_laplacians(m) == 2
    # state_dict round trips, also across dtypes, keep one Laplacian per resolution
    y = m(x)
    for dtype in (torch.float64, torch.float32):
        b = SphericalUNet(NSIDE, 2, 3, channels=(4, 6), convs_per_level=2, unpool=unpool, dtype=dtype,
                          **_kw(cache_dir)).eval()
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        buf.seek(0)
        b.load_state_dict(torch.load(buf))
        assert _distinct_laplacians(b) == 2
        tol = dict(rtol=0, atol=0) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(b(x.to(dtype)).double(), y, **tol)


@pytest.mark.parametrize("unpool", ["repeat", "max"])
def test_unet_shapes_backward(cache_dir, unpool):
    m = SphericalUNet(8, 2, 3, channels=(4, 6, 8), convs_per_level=2, unpool=unpool, **_kw(cache_dir))
    x = torch.randn(2, 768, 2, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 768, 3)
    y.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in m.parameters())
    assert "total" in m.summary()


def test_unet_is_local_per_pixel_segmentation(cache_dir):
    """A UNet can fit a per-pixel target (the input's sign) quickly: outputs are per pixel."""
    torch.manual_seed(0)
    m = SphericalUNet(NSIDE, 1, 1, channels=(8, 8), **_kw(cache_dir))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x = torch.randn(8, 192, 1)
    t = (x > 0).float()
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x), t)
        loss.backward()
        opt.step()
    m.eval()
    assert ((m(x) > 0).float() == t).float().mean() > 0.95


def test_partial_sky_models(cache_dir):
    nside = 8
    idx = np.arange(2 * 64, 4 * 64)  # two base pixels
    extra = np.array([5 * 64 + 3, 7 * 64 + 1])  # two pixels without complete parents
    indices = np.sort(np.concatenate([idx, extra]))
    with pytest.warns(UserWarning, match="dropped 2"):
        m = DeepSphereClassifier(nside, 1, channels=(3, 4), indices=indices, **_kw(cache_dir))
    assert m(torch.randn(2, indices.size, 1)).shape == (2, 2)
    assert m.out_sampling.npix == 2 * 4
    with pytest.warns(UserWarning):
        u = SphericalUNet(nside, 1, 2, channels=(3, 4), indices=indices, **_kw(cache_dir))
    assert u(torch.randn(2, indices.size, 1)).shape == (2, indices.size, 2)
    with pytest.raises(ValueError, match="partial sky"):
        m(torch.randn(2, 12 * nside**2, 1))


def test_bad_inputs(cache_dir):
    m = DeepSphereClassifier(NSIDE, 2, channels=(4,), **_kw(cache_dir))
    with pytest.raises(ValueError, match="pixels, expected 192.*nside 4"):
        m(torch.randn(1, 768, 2))
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(1, 192, 3))
    x = torch.randn(1, 192, 2)
    x[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(x)
    x[0, 3, 0] = UNSEEN
    with pytest.raises(ValueError, match="UNSEEN"):
        m(x)
    with pytest.raises(ValueError, match="NESTED"):
        DeepSphereClassifier(NSIDE, 2, order="RING", **_kw(cache_dir))
    with pytest.raises(ValueError, match="NESTED"):
        SphericalUNet(NSIDE, 2, 1, order="RING", **_kw(cache_dir))
    with pytest.raises(ValueError, match="power of 2"):
        DeepSphereClassifier(6, 2, **_kw(cache_dir))
    with pytest.raises(ValueError, match="head"):
        DeepSphereClassifier(NSIDE, 2, head="attention", **_kw(cache_dir))
    with pytest.raises(ValueError, match="stats"):
        DeepSphereClassifier(NSIDE, 2, channels=(4,), head="stats", stats=("kurtosis",), **_kw(cache_dir))
    with pytest.raises(ValueError, match="channels"):
        DeepSphereClassifier(NSIDE, 2, channels=(), **_kw(cache_dir))
    with pytest.raises(ValueError, match="unpool"):
        SphericalUNet(NSIDE, 2, 1, unpool="max", pool="avg", **_kw(cache_dir))


def test_footprint_pooled_to_one_pixel_is_refused_by_name(cache_dir):
    """16 pixels at nside 16 pooled twice by 4 leave 1 pixel: no graph. The error names the
    block, the pooled level and its pixel count (not "k must be a positive integer, got 0")."""
    idx = np.arange(16)
    with pytest.raises(ValueError, match=r"block 3 .*pooled 2 time.*at most 1 pooling level.*nside4.* 1 pixel.*fewer pooling levels"):
        DeepSphereClassifier(16, 1, channels=(8, 8, 8), indices=idx, **_kw(cache_dir))
    with pytest.raises(ValueError, match=r"UNet level 2 .* 1 pixel"):
        SphericalUNet(16, 1, 1, channels=(4, 4, 4), indices=idx, **_kw(cache_dir))
    # what the message proposes works: one pooling less, or a larger footprint
    m = DeepSphereClassifier(16, 1, channels=(8, 8, 8), pool_levels=(1, 0, 0), indices=idx, **_kw(cache_dir))
    assert m(torch.randn(2, 16, 1)).shape == (2, 2)
    big = DeepSphereClassifier(16, 1, channels=(8, 8, 8), indices=np.arange(64), **_kw(cache_dir))
    assert big(torch.randn(2, 64, 1)).shape == (2, 2)  # last conv on 4 pixels: k capped at 3 as before


def test_cached_and_fresh_builds_make_no_coordinates(tmp_path, monkeypatch):
    """Neither the graph search nor the Laplacian values (recomputed from the cached pattern on
    every build) need a sampling's stored (npix,) theta / phi: they compute the angles of a
    block's pixels only.  The values are the same bits as with the stored coordinates."""
    ref_graph = build_graph(HealpixSampling(16), k=8, cache=False)
    ref_graph.sampling.theta  # stored coordinates made: the values below read them
    ref = ref_graph.rescaled_laplacian(np.float32)

    def refuse(self):
        raise AssertionError(f"coordinates of {self!r} computed")

    monkeypatch.setattr(HealpixSampling, "_coordinates", refuse)
    # blocks smaller than the 3072 pixels, as at nside >= 256 (else one block covers the sky and a
    # whole-sky angles call would pass unnoticed); the values pass reads _ROWS rows per block
    monkeypatch.setattr(HealpixSampling, "COORD_CHUNK", 1000)
    monkeypatch.setattr(_pattern, "_ROWS", 512)
    fresh = DeepSphereClassifier(16, 1, channels=(4, 6), K=3, k=8, cache_dir=tmp_path)
    cached = DeepSphereClassifier(16, 1, channels=(4, 6), K=3, k=8, cache_dir=tmp_path)
    for m in (fresh, cached):
        lap = m.blocks[0][0].conv.laplacian
        assert np.array_equal(lap.values().numpy(), ref.data) and np.array_equal(lap.col_indices().numpy(), ref.indices)


def test_describe_gives_the_k_the_graphs_use():
    """A network whose coarse level is capped at its distinct points - 1 says so beside the k asked for."""
    two = DeepSphereClassifier(2, 1, channels=(4, 4), pool_levels=(1, 0), cache=False)
    assert "k=20 (11 at 12 points: capped at points - 1)" in two.describe()
    assert ", k=20, " in DeepSphereClassifier(8, 1, channels=(4, 4), cache=False).describe()
    assert ", k=11, " in SphericalUNet(1, 1, 1, channels=(4,), k=11, cache=False).describe()


@pytest.mark.parametrize("make", [
    lambda k: DeepSphereClassifier(8, 1, channels=(4,), k=k, cache=False),
    lambda k: DeepSphereClassifier(1, 1, channels=(4,), pool_levels=0, k=k, cache=False),
    lambda k: SphericalUNet(1, 1, 1, channels=(4,), k=k, cache=False),
    lambda k: HybridClassifier(2, 1, graph_channels=(4,), pool_levels=0, bandlimits=(4, 2), harmonic_channels=(4,), k=k,
                               cache=False),
], ids=["classifier", "classifier-nside1", "unet", "hybrid"])
def test_k_of_the_input_pixels_or_more_is_refused(make):
    """DeepSphereClassifier(8, 1, k=2000) on 768 pixels built a dense complete graph at the input (the
    cap meant for coarse levels), while build_graph refuses the same k; now the same refusal."""
    npix = make(11).sampling.npix
    with pytest.raises(ValueError, match=f"k={npix} neighbours needs more than k pixels; the sampling has {npix}"):
        make(npix)
    with pytest.raises(ValueError, match="k=2000 neighbours needs more than k pixels"):
        make(2000)


@pytest.mark.parametrize("cls", [DeepSphereClassifier, DeepSphereRegressor, SphericalUNet])
def test_a_boolean_mask_as_indices_gets_the_models_remedy(cls):
    """The models take pixel ``indices`` and no ``mask=``: a boolean mask given as indices is told to pass
    indices=np.flatnonzero(mask), naming the model (was HealpixSampling's "use mask=", which the models refuse),
    and a mask= keyword is refused by a TypeError naming the class (was Signature.bind's, naming nothing).
    HealpixSampling, which takes mask=, keeps its advice."""
    mask = np.zeros(12 * 16**2, dtype=bool)
    mask[:256] = True
    args = (16, 1, 1) if cls is SphericalUNet else (16, 1)
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: indices is a boolean mask: pass "
                                         r"indices=np\.flatnonzero\(mask\) \(.*no mask=\)$"):
        cls(*args, indices=mask)
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\.__init__\(\) got an unexpected keyword argument 'mask'$"):
        cls(*args, mask=mask)
    with pytest.raises(ValueError, match=r"boolean mask: use mask= \(or np\.flatnonzero\(mask\) as indices\)"):
        HealpixSampling(16, indices=mask)


def test_graph_encoder_is_public_and_refuses_a_sampling_without_the_nested_hierarchy():
    """The shared encoder is exported with the models; on a non-HEALPix sampling it names the sampling and the
    route (was: AttributeError 'no attribute nside'), before any graph is built."""
    from deepsphere_gen.models import graph_encoder
    from deepsphere_gen.nn import LaplacianPyramid
    from deepsphere_gen.sampling import DriscollHealySampling

    graphs = LaplacianPyramid(k=8, cache=False)
    with pytest.raises(TypeError, match="graph_encoder: sampling must be a HealpixSampling .*got DriscollHealySampling; "
                                        "on another sampling stack ChebConv layers on one shared nn.Laplacian"):
        graph_encoder(graphs, DriscollHealySampling(8), 1, (4, 4), (0, 0), 3, False, "max", torch.float64)
    encoder, out = graph_encoder(graphs, HealpixSampling(4), 1, (4, 4), (1, 0), 3, False, "max", torch.float64)
    assert out.nside == 2 and encoder(torch.randn(2, 192, 1, dtype=torch.float64)).shape == (2, 48, 4)
