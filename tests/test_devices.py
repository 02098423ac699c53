"""The device path of the whole toolkit: every case runs on "cpu" and, where CUDA is available, "cuda".

Each test builds its object on CPU in float64, copies it to ``device`` (``.to(device)``;
float32 cases also cast with ``.to(dtype)``), runs forward AND backward there with a fixed
random cotangent, and asserts that

(a) outputs, gradients, parameters and buffers are on the device,
(b) they equal the CPU float64 results: max |got - ref| / max |ref| <= 1e-10 in float64,
    1e-4 in float32 (for a reference that is exactly zero: the absolute difference),
(c) nothing is NaN / inf.

On CPU the reference is the same object built again: the case checks the harness and that
``.to()`` keeps every number.  The ground truth of each layer is in its
own test file; this one proves that the same numbers come out on another device.
"""
import math
import types

import pytest
import torch

import deepsphere_gen.bench as _bench
from deepsphere_gen.equivariance import assert_equivariant, flatten_batch
from deepsphere_gen.graph import build_graph
from deepsphere_gen.harmonic import (
    SHT,
    SO3Transform,
    analysis,
    random_rotations,
    rotate_coefficients,
    rotate_map,
    synthesis,
)
from deepsphere_gen.models import CohenS2CNN, DeepSphereClassifier, HarmonicClassifier, HybridClassifier, SphericalUNet
from deepsphere_gen.nn import (
    ChannelWiseConv,
    ChebConv,
    CrossChannelConv,
    DegreeNorm,
    EfficientGeneralizedLayer,
    GeneralizedSignal,
    HealpixAvgPool,
    HealpixMaxPool,
    HealpixMaxUnpool,
    HealpixUnpool,
    InvariantReadout,
    MapToSignal,
    S2Conv,
    S2InputLayer,
    S2ReLU,
    S2ToSO3Conv,
    SignalToMap,
    SO3Conv,
    SO3ReLU,
    TensorProductActivation,
    UniformConv,
    s2_near_identity_grid,
    so3_near_identity_grid,
)
from deepsphere_gen.sampling import (
    DriscollHealySampling,
    GaussLegendreSampling,
    GaussLegendreSO3Sampling,
    HealpixSampling,
    McEwenWiauxSampling,
)

pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64 = torch.float32, torch.float64
TOL = {F64: 1e-10, F32: 1e-4}
BOTH = pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])




@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


# ----------------------------------------------------------------------------- helpers


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _coeffs(L, B=2, C=2, seed=0):
    return _randn(B, L * L, C, seed=seed)


def _fragments(L, tau, B=2, C=2, seed=0):
    """Fragments (B, C, 2l+1, tau(l)) of N(0, 1) float64 values."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, C, 2 * l + 1, tau(l), generator=g, dtype=F64) for l in range(L)]


def _signal_call(module, *fragments):
    return module(GeneralizedSignal(fragments))


def _on(t: torch.Tensor, device: torch.device, what: str) -> None:
    assert t.device.type == device.type, f"{what} is on {t.device}, expected {device}"


def _close(got, ref, device, tol, what):
    """(a) got on device, (c) finite, (b) max |got - ref| <= tol * max |ref|."""
    _on(got, device, what)
    got = got.detach().to("cpu", F64)
    assert bool(torch.isfinite(got).all()), f"{what} has NaN/inf values"
    ref = ref.detach().to("cpu", F64)
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} vs reference {tuple(ref.shape)}"
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    err = float((got - ref).abs().max()) if ref.numel() else 0.0
    rel = err / scale if scale > 0 else err
    assert rel <= tol, f"{what}: relative difference {rel:.2e} from the CPU float64 result > {tol:.0e}"


def _fwd_bwd(module, inputs, call):
    """Forward on ``inputs`` (floating ones require grad), loss <y, g> with a fixed g, backward.

    Returns {name: tensor or None}: the flattened output, the input gradients and every
    parameter's gradient (None where it got none).
    """
    xs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    flat = flatten_batch(call(module, *xs))
    g = _randn(*flat.shape, seed=123).to(flat.device, flat.dtype)
    (flat * g).sum().backward()
    out = {"output": flat}
    out.update({f"gradient of input {i}": x.grad for i, x in enumerate(xs) if x.requires_grad})
    out.update({f"gradient of {n}": p.grad for n, p in module.named_parameters() if p.requires_grad})
    return out


def check_on_device(make, inputs, device, dtype=F64, call=lambda m, *x: m(*x), tol=None):
    """Build ``make()`` (CPU, float64) and a copy moved to (device, dtype); compare forward and backward.

    ``inputs``: CPU float64 (or integer) tensors; ``call(module, *inputs)`` -> tensor,
    list of tensors or GeneralizedSignal.  Returns the moved module.
    """
    torch.manual_seed(0)
    ref_mod = make()
    torch.manual_seed(0)  # the same module again (deepcopy cannot copy a sparse CSR buffer)
    mod = make().to(device=device, dtype=dtype)
    for name, t in [*mod.named_parameters(), *mod.named_buffers()]:
        _on(t, device, f"{type(mod).__name__}.{name} after .to()")
    ref = _fwd_bwd(ref_mod, inputs, call)
    got = _fwd_bwd(mod, [x.to(device, dtype) if x.is_floating_point() else x.to(device) for x in inputs], call)
    assert got.keys() == ref.keys()
    for key, r in ref.items():
        assert (got[key] is None) == (r is None), f"{key}: gradient present on one device only"
        if r is not None:
            _close(got[key], r, device, TOL[dtype] if tol is None else tol, key)
    return mod


class _Chain(torch.nn.Module):
    """Modules applied one after the other (the first may return (value, indices))."""

    def __init__(self, *mods):
        super().__init__()
        self.mods = torch.nn.ModuleList(mods)

    def forward(self, x):
        for m in self.mods:
            x = m(*x) if isinstance(x, tuple) else m(x)
        return x


def _rotations(n=2, seed=0):
    return list(random_rotations(n, seed))


# ----------------------------------------------------------------------------- graph side


@pytest.fixture(scope="module")
def laplacian(graph_cache):
    """Rescaled Laplacian (scipy, float64) of the k = 8 graph on HEALPix nside 2."""
    return build_graph(HealpixSampling(2), k=8, cache_dir=graph_cache).rescaled_laplacian()


@BOTH
@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_chebconv_fused_forward_backward(device, dtype, K, laplacian):
    x = _randn(3, 48, 2)

    def make():
        conv = ChebConv(2, 3, K, laplacian, dtype=F64)
        with torch.no_grad():
            conv.bias.normal_()
        return conv

    conv = check_on_device(make, [x], device, dtype)
    assert conv.laplacian.layout == torch.sparse_csr and conv.laplacian.dtype == dtype
    assert conv.laplacian_t is None  # symmetric Laplacian: no stored transpose


def test_chebconv_state_dict_round_trip_between_devices(device, laplacian):
    torch.manual_seed(0)
    a = ChebConv(2, 3, 3, laplacian, dtype=F64).to(device)
    with torch.no_grad():
        a.bias.normal_()
    b = ChebConv(2, 3, 3, laplacian, dtype=F64)  # other weights, on CPU
    b.load_state_dict(a.state_dict())
    assert b.laplacian.device.type == "cpu" and b.weight.device.type == "cpu"
    x = _randn(2, 48, 2)
    _close(a(x.to(device)), b(x), device, 1e-12, "device module vs CPU module loaded from its state_dict")
    c = ChebConv(2, 3, 3, laplacian, dtype=F64).to(device)  # and back: CPU state into a device module
    c.load_state_dict(b.state_dict())
    _on(c.laplacian, device, "loaded Laplacian")
    _close(c(x.to(device)), b(x), device, 1e-12, "CPU state_dict loaded into the device module")


@pytest.mark.parametrize("p", [1, 2])
def test_healpix_pooling_and_unpooling(device, p):
    x = _randn(2, 12 * 16, 3)  # nside 4
    check_on_device(lambda: _Chain(HealpixMaxPool(p)), [x], device)
    check_on_device(lambda: _Chain(HealpixAvgPool(p)), [x], device)
    check_on_device(lambda: _Chain(HealpixAvgPool(p), HealpixUnpool(p)), [x], device)
    check_on_device(lambda: _Chain(HealpixMaxPool(p, return_indices=True), HealpixMaxUnpool(p)), [x], device)
    y, idx = HealpixMaxPool(p, return_indices=True)(x.to(device))
    _on(idx, device, "max-pool indices")
    assert torch.equal(idx.cpu(), HealpixMaxPool(p, return_indices=True)(x)[1])


def test_graph_built_on_cpu_then_chebconv_on_device(device, graph_cache):
    g = build_graph(HealpixSampling(2), k=8, cache_dir=graph_cache)
    lap = g.to_torch(dtype=F64, device=device)  # CSR made directly on the device
    _on(lap, device, "SphereGraph.to_torch(device=...)")
    torch.manual_seed(0)
    conv = ChebConv(1, 2, 3, lap, dtype=F64, device=device)
    _on(conv.laplacian, device, "ChebConv Laplacian built from a device tensor")
    _on(conv.weight, device, "ChebConv weight (device=...)")
    ref = ChebConv(1, 2, 3, g, dtype=F64)  # from the graph object, on CPU
    ref.load_state_dict({k: v.cpu() for k, v in conv.state_dict().items()})
    x = _randn(2, g.npix, 1)
    xd = x.to(device, copy=True).requires_grad_()
    y = conv(xd)
    y.square().sum().backward()
    xr = x.clone().requires_grad_()
    ref(xr).square().sum().backward()
    _close(y, ref(x), device, 1e-12, "ChebConv on the device graph")
    _close(xd.grad, xr.grad, device, 1e-12, "input gradient")
    _close(conv.weight.grad, ref.weight.grad, device, 1e-12, "weight gradient")


# ----------------------------------------------------------------------------- harmonic transforms


SAMPLINGS = {
    "healpix": lambda: (HealpixSampling(4), 6),
    "gl": lambda: (GaussLegendreSampling(6), 6),
    "dh": lambda: (DriscollHealySampling(6), 6),
    "mw": lambda: (McEwenWiauxSampling(6), 6),
}


@BOTH
@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_sht_forward_inverse(device, dtype, name):
    s, L = SAMPLINGS[name]()
    iterations = 3 if name == "healpix" else 0
    x = _randn(2, s.npix, 2)
    a = _coeffs(L)
    check_on_device(lambda: SHT(s, L, dtype=F64, iterations=iterations), [x], device, dtype)
    check_on_device(lambda: SHT(s, L, dtype=F64), [a], device, dtype, call=lambda m, c: m.inverse(c))
    sht = SHT(s, L, dtype=dtype, device=device)  # built on the device
    _on(sht._anchor, device, "SHT built with device=")
    back = sht(sht.inverse(a.to(device, dtype)), iterations=iterations)
    if name != "healpix":  # exact quadrature: round trip to the coefficients
        _close(back, a, device, TOL[dtype], f"{name} round trip")


@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_functional_transforms_and_rotations(device, name):
    s, L = SAMPLINGS[name]()
    a = _coeffs(L)
    R = _rotations(1, seed=5)[0]
    x = synthesis(a.to(device), s, L)  # tables cached per (dtype, device)
    _close(x, synthesis(a, s, L), device, 1e-12, f"functional synthesis on {name}")
    _close(analysis(x, s, L), analysis(x.cpu(), s, L), device, 1e-12, f"functional analysis on {name}")
    # rotation of coefficients (Wigner-D route), with gradients
    ad = a.to(device, copy=True).requires_grad_()
    rd = rotate_coefficients(ad, R)
    rd.square().sum().backward()
    ar = a.clone().requires_grad_()
    rr = rotate_coefficients(ar, R)
    rr.square().sum().backward()
    _close(rd, rr, device, 1e-12, "rotate_coefficients")
    _close(ad.grad, ar.grad, device, 1e-12, "gradient of rotate_coefficients")
    if name != "healpix":
        _close(rotate_map(x, s, R), synthesis(rr.detach(), s, L), device, 1e-10, f"rotate_map on {name}")


def test_so3_transform_round_trip(device):
    grid = GaussLegendreSO3Sampling(4)
    t = SO3Transform(grid).to(device)
    f = _fragments(4, lambda l: 2 * l + 1)
    check_on_device(lambda: SO3Transform(grid), f, device, call=lambda m, *fr: m.inverse(list(fr)))
    check_on_device(lambda: SO3Transform(grid), [_randn(2, grid.npoints, 2)], device)
    back = t(t.inverse([x.to(device) for x in f]))
    for l, (b, x) in enumerate(zip(back, f)):
        _close(b, x, device, 1e-10, f"SO(3) round trip, degree {l}")


# ----------------------------------------------------------------------------- harmonic layers


@BOTH
@pytest.mark.parametrize("mixing", ["full", "mst", "rmst"])
def test_tensor_product_activation(device, dtype, mixing):
    f = _fragments(4, lambda l: 2)
    check_on_device(lambda: TensorProductActivation(4, 2, 2, mixing=mixing), f, device, dtype, call=_signal_call)


@BOTH
@pytest.mark.parametrize("mixing", ["full", "mst", "rmst"])
def test_efficient_generalized_layer_and_equivariance(device, dtype, mixing):
    f = _fragments(5, lambda l: 2)

    def make():
        return EfficientGeneralizedLayer(5, 2, 2, L_out=3, channels_out=3, type_out=2, mixing=mixing).double()

    layer = check_on_device(make, f, device, dtype, call=_signal_call)
    if dtype == F64:
        x = GeneralizedSignal([t.to(device) for t in f])
        assert_equivariant(layer, x, _rotations(2), lambda s, a: s.rotate(a))


TAU = (2, 3, 1, 2)
GENERALIZED = {
    "uniform": lambda: UniformConv(4, 2, TAU, 2),
    "channelwise": lambda: ChannelWiseConv(4, 2, TAU, (1, 2, 3, 1)),
    "cross": lambda: CrossChannelConv(4, 2, 3, TAU),
    "degree_norm": lambda: DegreeNorm(4, 2, TAU),
}


@pytest.mark.parametrize("name", list(GENERALIZED))
def test_generalized_convolutions_and_equivariance(device, name):
    f = _fragments(4, lambda l: TAU[l])
    layer = check_on_device(lambda: GENERALIZED[name]().double(), f, device, call=_signal_call)
    x = GeneralizedSignal([t.to(device) for t in f])
    assert_equivariant(layer, x, _rotations(2), lambda s, a: s.rotate(a))


def test_s2_input_layer_and_readout(device):
    s = GaussLegendreSampling(4)
    x = synthesis(_coeffs(4), s, 4)  # band-limited: exact analysis, exact equivariance
    make = lambda: S2InputLayer(4, 2, 3, tau=2, sampling=s, dtype=F64).double()  # noqa: E731
    layer = check_on_device(make, [x], device)
    _on(layer.sht._anchor, device, "S2InputLayer SHT")
    assert_equivariant(lambda m: layer(m), x.to(device), _rotations(2), lambda m, R: rotate_map(m, s, R),
                       lambda y, R: y.rotate(R))
    f = _fragments(4, lambda l: 2, C=3)
    readout = check_on_device(lambda: InvariantReadout(4, 3, 2, 5, hidden=(8,)).double(), f, device,
                              call=_signal_call)
    sig = GeneralizedSignal([t.to(device) for t in f])
    assert_equivariant(readout, sig, _rotations(2), lambda y, R: y.rotate(R), lambda y, R: y)


# ----------------------------------------------------------------------------- classic layers


def test_classic_convolutions(device):
    s2 = _fragments(4, lambda l: 1)
    so3 = _fragments(4, lambda l: 2 * l + 1)
    check_on_device(lambda: S2Conv(4, 2, 3, n_anchors=3).double(), s2, device, call=_signal_call)
    check_on_device(lambda: S2ToSO3Conv(4, 2, 3, L_out=3, kernel_grid=s2_near_identity_grid()).double(), s2,
                    device, call=_signal_call)
    conv = check_on_device(lambda: SO3Conv(4, 2, 3, L_out=3, kernel_grid=so3_near_identity_grid()).double(), so3,
                           device, call=_signal_call)
    x = GeneralizedSignal([t.to(device) for t in so3])
    assert_equivariant(conv, x, _rotations(2), lambda y, R: y.rotate(R))


def test_pointwise_relus(device):
    s2 = _fragments(4, lambda l: 1)
    so3 = _fragments(3, lambda l: 2 * l + 1)
    check_on_device(lambda: S2ReLU(4, 2, L_out=3, dtype=F64), s2, device, call=_signal_call)
    check_on_device(lambda: S2ReLU(4, 2, grid="gl", dtype=F64), s2, device, call=_signal_call)
    check_on_device(lambda: SO3ReLU(3, 2), so3, device, call=_signal_call)
    check_on_device(lambda: SO3ReLU(3, 2, grid="soft", L_out=2), so3, device, call=_signal_call)


# ----------------------------------------------------------------------------- bridges


@pytest.mark.parametrize("name", ["healpix", "gl"])
def test_bridges(device, name):
    s, L = SAMPLINGS[name]()
    x = _randn(2, s.npix, 2)
    check_on_device(lambda: MapToSignal(s, L, 2, dtype=F64), [x], device)
    f = _fragments(L - 1, lambda l: 2)  # lower bandlimit: padded with zeros
    check_on_device(lambda: SignalToMap(s, L, dtype=F64), f, device, call=_signal_call)
    if name == "gl":  # exact: map -> signal -> map
        xb = synthesis(_coeffs(L), s, L).to(device)
        back = SignalToMap(s, L, dtype=F64).to(device)(MapToSignal(s, L, 2, dtype=F64).to(device)(xb))
        _close(back, xb.cpu(), device, 1e-10, "bridge round trip")


# ----------------------------------------------------------------------------- models


def _model_step(model, x, target, device, loss_fn):
    """One Adam step on the device: loss finite, parameters stay finite and on the device."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xd, td = x.to(device), target.to(device)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    loss = loss_fn(model(xd), td)
    _on(loss, device, "loss")
    assert bool(torch.isfinite(loss)), "loss is NaN/inf"
    loss.backward()
    opt.step()
    for (name, p), b in zip(model.named_parameters(), before):
        _on(p, device, f"parameter {name} after the step")
        assert bool(torch.isfinite(p).all()), f"parameter {name} is NaN/inf after the step"
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before)), "the step changed nothing"
    for name, t in model.named_buffers():
        _on(t, device, f"buffer {name} after the step")
    assert bool(torch.isfinite(loss_fn(model(xd), td)))


def _ce(y, t):
    return torch.nn.functional.cross_entropy(y, t)


def _mse(y, t):
    return torch.nn.functional.mse_loss(y, t)


def _models(cache):
    kw = dict(K=3, k=8, cache_dir=cache, dtype=F64)
    return {
        "deepsphere": (lambda: DeepSphereClassifier(4, 2, channels=(3, 4), n_classes=3, **kw),
                       (2, 192, 2), _ce, (2,)),
        "unet": (lambda: SphericalUNet(4, 2, 3, channels=(3, 4), unpool="max", **kw), (2, 192, 2), _mse, (2, 192, 3)),
        "harmonic": (lambda: HarmonicClassifier(3, bandlimits=(4, 3), channels=(2, 3), sampling=GaussLegendreSampling(4),
                                                hidden=(8,), dtype=F64).double(), (2, GaussLegendreSampling(4).npix, 1),
                     _ce, (2,)),
        "hybrid": (lambda: HybridClassifier(8, 1, 3, graph_channels=(3,), bandlimits=(4, 3), harmonic_channels=(3,),
                                            hidden=(8,), **kw), (2, 768, 1), _ce, (2,)),
        "cohen": (lambda: CohenS2CNN(3, bandlimits=(5, 4, 3), channels=(2, 3), sampling=McEwenWiauxSampling(5),
                                     dtype=F64).double(), (2, McEwenWiauxSampling(5).npix, 1), _ce, (2,)),
    }


@pytest.mark.parametrize("name", ["deepsphere", "unet", "harmonic", "hybrid", "cohen"])
def test_model_forward_backward_and_optimizer_step(device, name, graph_cache):
    make, shape, loss_fn, tshape = _models(graph_cache)[name]
    x = _randn(*shape)
    target = torch.randint(0, 3, tshape, generator=torch.Generator().manual_seed(0)) if loss_fn is _ce \
        else _randn(*tshape, seed=1)
    model = check_on_device(make, [x], device)  # train mode: batch statistics
    _model_step(model, x, target, device, loss_fn)


def test_model_float32_on_device(device, graph_cache):
    """A float64-built hybrid model cast to float32 on the device agrees with float64 on CPU."""
    make = _models(graph_cache)["hybrid"][0]
    check_on_device(lambda: make().eval(), [_randn(2, 768, 1)], device, F32, tol=1e-3)


# ----------------------------------------------------------------------------- bench harness


def test_bench_chebconv_suite_tiny_case(device, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path))
    suite = _bench.discover_suites()["chebconv"]
    h = _bench.Harness(device.type, repeats=2, warmup=1, quick=True)
    h.suite = "chebconv"
    h._machine = {"bandwidth_gbs": 10.0, "gemm_gflops": 100.0}  # skip the rate measurement
    case = {"mode": "fwd+bwd", "nside": 2, "k": 8, "batch": 2, "c_in": 3, "c_out": 4, "K": 3}
    (rec,) = suite.run(case, h.device, h)
    assert rec["device"] == device.type
    assert rec["ours_s"] > 0 and rec["peer_s"] > 0 and rec["peak_mem_mb"] >= 0
    assert rec["max_rel_diff"] < 1e-5  # ours vs torch_geometric on the same device, float32


def test_bench_harness_records_device(device):
    suite = types.SimpleNamespace(
        NAME="tiny",
        cases=lambda quick: [{"n": 1 << 18}],
        run=lambda case, dev, h: [h.record(
            "ones", case, h.time(lambda: torch.ones(case["n"], device=dev)).median,
            peak_mem_mb=h.peak_memory_mb(lambda: torch.ones(case["n"], device=dev)),
        )],
    )
    h = _bench.Harness(device.type, repeats=2, warmup=1, quick=True)
    (rec,) = _bench.run_suites({"tiny": suite}, h, progress=False)
    assert "error" not in rec["extras"], rec["extras"]
    assert rec["suite"] == "tiny" and rec["device"] == device.type and rec["ours_s"] > 0
    if device.type == "cuda":  # tensors only: exactly the 1 MiB of the output
        assert h.memory_method() == "cuda-max-memory-allocated"
        assert math.isclose(rec["peak_mem_mb"], 1.0, rel_tol=0.05)


# ----------------------------------------------------------------------------- no hidden copies


def _steady_state_cases(cache):
    lap = build_graph(HealpixSampling(2), k=8, cache_dir=cache).rescaled_laplacian()
    hp4 = HealpixSampling(4)
    models = _models(cache)
    return {
        "chebconv": (lambda: ChebConv(2, 3, 4, lap), [(2, 48, 2)], lambda m, x: m(x)),
        "sht": (lambda: SHT(hp4, 6, iterations=3), [(2, hp4.npix, 2)], lambda m, x: m.inverse(m(x))),
        "efficient_layer": (lambda: EfficientGeneralizedLayer(4, 2, 2, mixing="mst"),
                            [(2, 2, 2 * l + 1, 2) for l in range(4)], _signal_call),
        "so3_relu": (lambda: SO3ReLU(3, 2), [(2, 2, 2 * l + 1, 2 * l + 1) for l in range(3)], _signal_call),
        **{name: (models[name][0], [models[name][1]], lambda m, x: m(x)) for name in ("unet", "hybrid", "cohen")},
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["chebconv", "sht", "efficient_layer", "so3_relu", "unet", "hybrid", "cohen"])
def test_no_host_to_device_copy_in_steady_state(name, graph_cache):
    """No hidden host -> device copies in forward (nor backward) once the per-device
    tables exist (the first calls may build them).  Device -> host syncs of the input checks
    (``check_finite``, ``SHT._check``) are allowed: they raise ValueError on bad input."""
    from torch.profiler import ProfilerActivity, profile

    make, shapes, call = _steady_state_cases(graph_cache)[name]
    torch.manual_seed(0)
    mod = make().to("cuda", F32)
    xs = [_randn(*s, seed=i).to("cuda", F32).requires_grad_() for i, s in enumerate(shapes)]

    def step():
        flatten_batch(call(mod, *xs)).square().sum().backward()

    step(), step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    copies = sorted({e.name for e in prof.events() if "HtoD" in e.name})
    assert not copies, f"{name}: host -> device copies in a steady-state forward + backward: {copies}"


def test_check_device_refuses_only_devices_known_absent(monkeypatch, tmp_path):
    """meta, xpu, mps:0 (with MPS) and cuda:i below the GPU count pass to torch (was: "device 'meta' requested but
    meta is not available"); a name torch cannot parse, cuda without CUDA or beyond the count, mps without MPS
    are refused, listing the devices found."""
    from deepsphere_gen._devices import check_device, check_map_location

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same cases on any machine
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for name in ("cpu", "cpu:0", "meta", torch.device("meta"), "xpu"):
        assert check_device(name) is name
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(3)}, path)
    assert torch.load(path, map_location=check_map_location("meta"), weights_only=True)["w"].is_meta
    for name, match in [("gpu", "^unknown device 'gpu'; valid devices here: cpu$"),
                        ("cuda:0", "^device 'cuda:0' requested but CUDA is not available on this machine; valid "
                                   "devices here: cpu$"),
                        ("mps:0", "^device 'mps:0' requested but MPS is not available on this machine; valid devices "
                                  "here: cpu$")]:
        with pytest.raises(ValueError, match=match):
            check_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    for name in ("cuda", "cuda:1", "mps", "mps:0"):
        assert check_device(name) == name
    with pytest.raises(ValueError, match="^device 'cuda:2' is not present; valid devices here: cpu, cuda, cuda:0, "
                                         "cuda:1, mps$"):
        check_device("cuda:2")


def test_bench_harness_and_distributed_context_check_devices_as_the_commands_do(monkeypatch):
    """Harness and distributed_context refuse a device this machine lacks with the shared check's message, which lists
    the devices here (were: their own "device must be cpu or cuda, got 'gpu'" and "... CUDA is not available" without
    the list); cuda means cuda:LOCAL_RANK, checked against the GPUs present.  The harness still refuses a device type
    present here that it cannot time (its clock waits on CUDA's queue only)."""
    from deepsphere_gen.training import distributed_context

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same cases on any machine
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for make in (_bench.Harness, distributed_context):
        for name, match in [("gpu", "^unknown device 'gpu'; valid devices here: cpu$"),
                            ("cuda", "^device 'cuda' requested but CUDA is not available on this machine; valid "
                                     "devices here: cpu$"),
                            ("mps", "^device 'mps' requested but MPS is not available on this machine; valid devices "
                                    "here: cpu$")]:
            with pytest.raises(ValueError, match=match):
                make(name)
    assert _bench.Harness("cpu").device == distributed_context("cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="^the benchmark harness times on cpu or cuda only .* got 'meta'$"):
        _bench.Harness("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "2")  # a third process on a machine with two GPUs
    with pytest.raises(ValueError, match="^device 'cuda:2' is not present; valid devices here: cpu, cuda, cuda:0, "
                                         "cuda:1$"):
        distributed_context("cuda")
