"""HEALPix / equiangular pooling against healpy.ud_grade and reshape references."""
import re
import warnings

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.models import DeepSphereClassifier
from deepsphere_gen.nn import (
    EquiangularAvgPool,
    EquiangularMaxPool,
    EquiangularMaxUnpool,
    EquiangularUnpool,
    HealpixAvgPool,
    HealpixMaxPool,
    HealpixMaxUnpool,
    HealpixPartialPool,
    HealpixPartialUnpool,
    HealpixUnpool,
    partial_sky_pool,
    partial_sky_pool_plan,
)
from deepsphere_gen.sampling import DriscollHealySampling, GaussLegendreSampling, HealpixSampling, McEwenWiauxSampling


@pytest.mark.parametrize("p", [1, 2, 3])
def test_avg_pool_equals_healpy_ud_grade(p):
    nside = 16
    rng = np.random.default_rng(p)
    maps = rng.normal(size=(2, 12 * nside**2, 3))
    y = HealpixAvgPool(p)(torch.from_numpy(maps))
    for b in range(2):
        for c in range(3):
            ref = hp.ud_grade(maps[b, :, c], nside >> p, order_in="NESTED", order_out="NESTED")
            np.testing.assert_allclose(y[b, :, c].numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_max_pool_equals_reshape_reference_and_indices(p):
    nside, f = 8, 4**p
    x = torch.randn(3, 12 * nside**2, 2, dtype=torch.float64)
    y, idx = HealpixMaxPool(p, return_indices=True)(x)
    xn = x.numpy()
    ref = np.stack([xn[:, i * f:(i + 1) * f].max(axis=1) for i in range(xn.shape[1] // f)], axis=1)
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(torch.gather(x, 1, idx).numpy(), ref)  # indices are fine positions
    assert torch.equal(HealpixMaxPool(p)(x), y)
    # max-unpool puts each maximum back at its argmax, zeros elsewhere
    up = HealpixMaxUnpool(p)(y, idx)
    assert up.shape == x.shape
    mask = torch.zeros_like(x, dtype=torch.bool).scatter(1, idx, True)
    assert torch.equal(up[mask], x[mask]) and bool((up[~mask] == 0).all())
    assert int(mask.sum()) == y.numel()
    # boolean maps (which max_pool2d refuses): any pixel of the group, at its first True
    b = x > 0.5
    yb, ib = HealpixMaxPool(p, return_indices=True)(b)
    np.testing.assert_array_equal(yb.numpy(), b.numpy().reshape(3, -1, f, 2).any(axis=2))
    assert torch.equal(torch.gather(b, 1, ib), yb)


@pytest.mark.parametrize("layout", ["contiguous", "pixel-major"])
@pytest.mark.parametrize("p", [1, 2])
def test_max_pool_is_torch_max_bit_for_bit_with_ties(p, layout):
    """The max_pool2d path gives torch.max's values, first-maximum indices and gradients, bit for bit,
    on ties (repeated values, ReLU zeros) and on a pixel-major input (a ChebConv output's layout)."""
    nside, f, B, C = 8, 4**p, 3, 5
    gen = torch.Generator().manual_seed(p)
    x = torch.relu(torch.randn(B, 12 * nside**2, C, generator=gen))  # many all-zero groups
    x[:, 1::f] = x[:, ::f]  # ties between the first two children of every group
    if layout == "pixel-major":
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    x.requires_grad_(True)
    y, idx = HealpixMaxPool(p, return_indices=True)(x)
    g = torch.randn(y.shape, generator=gen)
    (gx,) = torch.autograd.grad(y, x, g)
    # reference: torch.max over the group axis (indices: the first maximum), its backward
    xr = x.detach().clone().requires_grad_(True)
    yr, arg = xr.reshape(B, -1, f, C).max(dim=2)
    (gr,) = torch.autograd.grad(yr, xr, g)
    assert torch.equal(y, yr) and y.is_contiguous()
    assert torch.equal(idx, arg + torch.arange(0, x.shape[1], f).view(1, -1, 1))
    assert torch.equal(gx, gr)


def test_unpool_repeat_and_round_trip():
    nside = 4
    x = torch.randn(2, 12 * nside**2, 3)
    y = HealpixAvgPool(1)(x)
    up = HealpixUnpool(1)(y)
    assert up.shape == x.shape
    # each child carries its parent's value; pooling the unpooled map gives it back
    np.testing.assert_array_equal(up.numpy()[:, 4:8], np.repeat(y.numpy()[:, 1:2], 4, axis=1))
    torch.testing.assert_close(HealpixAvgPool(1)(up), y)
    torch.testing.assert_close(HealpixMaxPool(2)(HealpixUnpool(2)(y)), y)
    # unpool of nside/2 equals healpy.ud_grade upsampling
    ref = hp.ud_grade(y[0, :, 0].numpy().astype(np.float64), nside, order_in="NESTED", order_out="NESTED")
    np.testing.assert_allclose(up[0, :, 0].numpy(), ref, rtol=1e-6)


def test_gradients_flow():
    x = torch.randn(2, 48, 2, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: HealpixAvgPool(1)(t), (x,))
    torch.autograd.gradcheck(lambda t: HealpixUnpool(1)(t), (x,))


def test_bad_inputs():
    with pytest.raises(ValueError, match="50 pixels, neither a NESTED full sky"):
        HealpixAvgPool(1)(torch.randn(1, 50, 1))
    with pytest.raises(ValueError, match="batch, pixels, channels"):
        HealpixMaxPool(1)(torch.randn(48, 1))
    with pytest.raises(ValueError, match="non-negative integer"):
        HealpixAvgPool(-1)
    with pytest.raises(ValueError, match="mode"):
        HealpixUnpool(1, mode="bilinear")
    with pytest.raises(ValueError, match="indices shape"):
        HealpixMaxUnpool(1)(torch.randn(1, 12, 2), torch.zeros(1, 12, 1, dtype=torch.long))


@pytest.mark.filterwarnings("ignore:partial-sky pooling")
def test_max_unpool_refuses_indices_of_another_pooling():
    """HealpixMaxUnpool given a partial-sky pooling's indices (positions in the partial map), another p's, or
    floats: one ValueError naming the mismatch, and HealpixPartialUnpool for the first (was: torch's "index 144 is
    out of bounds for dimension 1 with size 144", or where in range a map scattered to the wrong pixels); its own
    pooling's indices unpool as before, and ``check_input=False`` (the UNet's) gives the same map."""
    torch.manual_seed(0)
    s = HealpixSampling(4, indices=np.arange(3, 150))  # parents 0 and 37 incomplete: the partial map's positions shift
    y, idx = HealpixPartialPool(s, 1, return_indices=True)(torch.randn(2, s.npix, 3))
    with pytest.raises(ValueError, match=r"^indices are not the argmax of HealpixMaxPool\(p=1\) of this map: index \d+ "
                                         r"at coarse pixel \d+ is not one of its children .* unpool them with "
                                         r"HealpixPartialUnpool\(sampling, p, mode='max'\)\)$"):
        HealpixMaxUnpool(1)(y, idx)
    y1, idx1 = HealpixMaxPool(1, return_indices=True)(torch.randn(1, 192, 2))
    with pytest.raises(ValueError, match=r"argmax of HealpixMaxPool\(p=2\) of this map: index \d+ at coarse pixel 1 "):
        HealpixMaxUnpool(2)(y1, idx1)  # p = 1 indices: pixel 1's are 4..7, not its 16 children 16..31
    with pytest.raises(ValueError, match="indices must be integer .* got dtype torch.float32"):
        HealpixMaxUnpool(1)(y1, idx1.float())
    up = HealpixMaxUnpool(1)(y1, idx1)
    assert torch.equal(torch.gather(up, 1, idx1), y1) and int((up != 0).sum()) == y1.numel()
    assert torch.equal(HealpixMaxUnpool(1, check_input=False)(y1, idx1), up)


def test_full_sky_and_patch_layers_refuse_a_partial_sky_whose_count_is_a_multiple_of_4():
    """A cap of 280 NESTED pixels at nside 16 (a multiple of 4, 63 complete parents): reshaping it by 4 groups
    pixels of different parents; HealpixMaxPool / HealpixAvgPool refuse it (was: (2, 280, 1) -> (2, 70, 1)) and
    every other count but a full sky 12 * 4**n or a base patch 4**n with n >= p (12 -> 3 and 100 -> 25 were
    accepted), naming HealpixPartialPool, whose output is the ground truth: healpy's ud_grade of the full map at
    the complete parents.  Full skies and base patches pool as before (ud_grade of the patch's region)."""
    nside = 16
    idx = np.sort(hp.query_disc(nside, hp.ang2vec(1.2, 0.7), np.radians(35), nest=True))
    assert idx.size == 280 and bool((idx.reshape(-1, 4) // 4 != idx.reshape(-1, 4)[:, :1] // 4).any())
    full = np.random.default_rng(0).normal(size=12 * nside**2)
    x = torch.from_numpy(np.stack([full[idx], -full[idx]])).view(2, -1, 1)
    for layer in (HealpixMaxPool(1), HealpixAvgPool(1), HealpixMaxPool(1, return_indices=True)):
        with pytest.raises(ValueError, match=r"280 pixels, neither .*\(use HealpixPartialPool for a partial sky\)"):
            layer(x)
    for npix, p in ((12, 1), (100, 1), (3071, 1), (264, 1), (48, 2), (4, 2), (128, 1)):
        with pytest.raises(ValueError, match=f"input has {npix} pixels"):
            HealpixMaxPool(p)(torch.randn(1, npix, 1))
        with pytest.raises(ValueError, match=f"input has {npix} pixels"):
            HealpixAvgPool(p, npix=npix)
    with pytest.warns(UserWarning, match="dropped"):
        partial = HealpixPartialPool(HealpixSampling(nside, indices=idx), 1, mode="avg")
    complete = partial.coarse.indices
    ref = hp.ud_grade(full, nside // 2, order_in="NESTED", order_out="NESTED")[complete]
    np.testing.assert_allclose(partial(x)[0, :, 0].numpy(), ref, rtol=1e-12)
    assert complete.size == 63 and partial.dropped == 280 - 4 * 63
    # accepted counts: full skies and base patches (12 * 4**n, 4**n with n >= p), against ud_grade
    for p in (0, 1, 2):
        assert HealpixMaxPool(p)(torch.randn(1, 12 * 4**p, 2)).shape == (1, 12, 2)
    patch = 5 * nside**2 // 4 + np.arange(nside**2 // 4)  # a nested patch at level 1 of base pixel 1
    y = HealpixAvgPool(2)(torch.from_numpy(full[patch]).view(1, -1, 1))
    ref = hp.ud_grade(full, nside // 4, order_in="NESTED", order_out="NESTED")[patch[::16] // 16]
    np.testing.assert_allclose(y[0, :, 0].numpy(), ref, rtol=1e-12)


def test_unpool_of_a_partial_coarse_map_is_its_children_in_nested_order():
    """HealpixUnpool takes any pixel count (no check like pooling's): the children of NESTED-sorted parents, 4**p
    consecutive per parent, are the fine map of those parents in NESTED order: HealpixPartialUnpool's output on
    that fine sampling, and healpy's ud_grade upsampling of the full map at those children."""
    nside = 8
    parents = np.sort(np.random.default_rng(1).choice(12 * (nside // 2) ** 2, 37, replace=False))
    children = (parents[:, None] * 4 + np.arange(4)).ravel()
    coarse = np.random.default_rng(2).normal(size=12 * (nside // 2) ** 2)
    x = torch.from_numpy(coarse[parents]).view(1, -1, 1)
    up = HealpixUnpool(1)(x)
    torch.testing.assert_close(up, HealpixPartialUnpool(HealpixSampling(nside, indices=children), 1)(x))
    ref = hp.ud_grade(coarse, nside, order_in="NESTED", order_out="NESTED")[children]
    np.testing.assert_array_equal(up[0, :, 0].numpy(), ref)


def test_npix_refuses_channels_first_and_changes_no_valid_use(tmp_path):
    """Without npix a channels-first (B, C, P) tensor with C a multiple of 4**p is pooled over
    its channels (nothing in the tensor tells); with npix (which the models pass) it is refused
    by name, and a (B, P, C) map gives the same bits as without."""
    x = torch.randn(2, 768, 16)
    wrong = x.transpose(1, 2).contiguous()  # (B, C, P)
    for make in (lambda **kw: HealpixMaxPool(1, **kw), lambda **kw: HealpixAvgPool(1, **kw)):
        assert make()(wrong).shape == (2, 4, 768)  # documented limit without npix
        with pytest.raises(ValueError, match=r"input has 16 pixels, expected 768 \(the layer.s\) \(channels-first"):
            make(npix=768)(wrong)
        assert torch.equal(make(npix=768)(x), make()(x))
    y, arg = HealpixMaxPool(2, return_indices=True, npix=768)(x)
    assert y.shape == arg.shape == (2, 48, 16)
    with pytest.raises(ValueError, match="npix must be a positive integer"):
        HealpixAvgPool(1, npix=0)
    model = DeepSphereClassifier(8, 1, channels=(2, 2), cache_dir=tmp_path)
    pools = [m for m in model.modules() if isinstance(m, HealpixMaxPool)]
    assert [m.npix for m in pools] == [768, 192]


def test_partial_sky_keeps_exactly_the_complete_parents():
    nside = 8
    rng = np.random.default_rng(0)
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[: 12 * 16] = True  # 12 complete parents at nside 4 ...
    mask[rng.choice(np.arange(12 * 16, 12 * nside**2), 100, replace=False)] = True  # ... plus scattered pixels
    s = HealpixSampling(nside, mask=mask)
    par = np.arange(12 * nside**2) // 4
    complete = np.array([q for q in np.unique(par[mask]) if mask[par == q].all()])
    with pytest.warns(UserWarning, match="dropped"):
        pool = HealpixPartialPool(s, 1, mode="avg")
    np.testing.assert_array_equal(pool.coarse.indices, complete)
    assert pool.dropped == s.npix - 4 * complete.size
    # values: the average over the four children, read from the full-sky map
    full = rng.normal(size=12 * nside**2)
    y = pool(torch.from_numpy(full[mask]).view(1, -1, 1))
    ref = hp.ud_grade(full, nside // 2, order_in="NESTED", order_out="NESTED")[complete]
    np.testing.assert_allclose(y[0, :, 0].numpy(), ref, rtol=1e-12)
    # max with indices -> positions in the partial map; unpool fills zeros where parents were dropped
    with pytest.warns(UserWarning):
        mpool = HealpixPartialPool(s, 1, mode="max", return_indices=True)
    x = torch.from_numpy(full[mask]).view(1, -1, 1)
    ym, idx = mpool(x)
    torch.testing.assert_close(torch.gather(x, 1, idx), ym)
    up = HealpixPartialUnpool(s, 1, mode="max")(ym, idx)
    assert up.shape == x.shape and torch.equal(torch.gather(up, 1, idx), ym)
    rep = HealpixPartialUnpool(s, 1)(y)
    child_of_kept = np.isin(s.indices // 4, complete)
    assert bool((rep[0, ~torch.from_numpy(child_of_kept), 0] == 0).all())
    torch.testing.assert_close(rep[0, torch.from_numpy(child_of_kept), 0], y[0, :, 0].repeat_interleave(4))


@pytest.mark.filterwarnings("ignore:partial-sky pooling")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [1, 2])
def test_partial_max_pool_kernel_is_the_torch_path_bit_for_bit(p, dtype, monkeypatch):
    """The compiled partial-sky max pooling gives the values and gradients of the torch path
    (gather, max_pool2d, and their backward) bit for bit: ties, all-zero groups, NaN and inf, -0
    gradients, dropped pixels; its second derivative is the torch path's; positions outside the
    map or a pixel listed twice are refused, an empty batch takes the torch path."""
    from deepsphere_gen.nn import _cheb_native, _pool_native

    monkeypatch.setenv(_cheb_native.ENV_VAR, "1")
    if not _pool_native.available():
        pytest.skip("no C compiler: the pooling runs on torch operations")
    nside, B, C = 16, 3, 20
    keep = np.flatnonzero(np.arange(12 * nside**2) % 53 != 7)  # holes: parents dropped at every level
    pool = HealpixPartialPool(HealpixSampling(nside, indices=keep), p, mode="max", check_input=False)  # NaN below
    gen = torch.Generator().manual_seed(p)
    x = torch.relu(torch.randn(B, pool.npix_in, C, generator=gen, dtype=dtype))
    x[:, 1::4] = x[:, ::4][:, : x[:, 1::4].shape[1]]  # ties
    first, second = pool._groups[1], pool._groups[2]  # parents whose gradient below is not -0
    x[0, first[[0, -1]], 0] = float("nan")  # two NaN children of one parent: the later one takes the argmax
    x[1, second[1], :3] = float("inf")
    x.requires_grad_(True)
    y = pool(x)
    assert y.grad_fn is not None and "GatherMax" in type(y.grad_fn).__name__  # the kernel ran
    yr = pool._torch_forward(x)
    torch.testing.assert_close(y, yr, rtol=0, atol=0, equal_nan=True)  # bit for bit, NaN where torch has NaN
    assert y.is_contiguous() and bool(y.isnan().any())
    g = torch.randn(y.shape, generator=gen, dtype=dtype)
    g[:, ::3] = -0.0
    (gx,), (gr,) = torch.autograd.grad(y, x, g), torch.autograd.grad(yr, x, g)
    assert torch.equal(gx, gr) and not torch.signbit(gx[gx == 0]).any()
    if dtype == torch.float64:  # double backward through the torch path
        small = HealpixPartialPool(HealpixSampling(4, indices=np.delete(np.arange(192), [5, 70])), p=1)
        xs = torch.randn(1, small.npix_in, 2, dtype=dtype, generator=gen).requires_grad_(True)
        assert torch.autograd.gradgradcheck(lambda t: small(t).square(), (xs,))
    _pool_native.check_groups(pool._groups, pool._dropped, pool.npix_in)  # the module's tables pass
    with pytest.raises(ValueError, match="positions"):
        _pool_native.check_groups(pool._groups.clamp(max=pool.npix_in) + 1, pool._dropped, pool.npix_in)
    twice = pool._groups.clone()
    twice[0, 0] = twice[0, 1]  # one pixel twice, one missing: its gradient would be left unwritten
    with pytest.raises(ValueError, match="once"):
        _pool_native.check_groups(twice, pool._dropped, pool.npix_in)
    with pytest.raises(ValueError, match="cover"):  # tables of another map
        _pool_native.gather_max(x[:, 1:], pool._groups, pool._dropped, pool._torch_forward)
    empty = pool(x[:0])
    assert empty.shape == (0, pool.coarse.npix, C) and "GatherMax" not in type(empty.grad_fn).__name__


def test_partial_sky_pool_plan_counts_the_complete_nested_parents():
    """partial_sky_pool_plan on a cap, a scattered mask and one without 4 siblings: each step's parents are the
    nested parents (index // 4) with all 4 children present, counted with numpy, and the pixels of the
    HealpixPartialPool chain; pooling stops at nside 1, where no parent is complete, or where ``may_pool`` says."""
    nside, rng = 32, np.random.default_rng(3)
    cap = np.sort(hp.query_disc(nside, hp.ang2vec(1.0, 2.0), np.radians(20), nest=True))
    scattered = np.sort(rng.choice(12 * nside**2, 2000, replace=False))
    single = np.sort(rng.choice(3 * nside**2, 500, replace=False) * 4 + rng.integers(0, 4, 500))  # one child each
    for idx in (cap, scattered, single, np.arange(12 * nside**2)):
        plan, steps = partial_sky_pool_plan(HealpixSampling(nside, indices=idx), 7)
        want, n, level = [], nside, idx
        while n >= 2:
            parents, counts = np.unique(level // 4, return_counts=True)
            if not (counts == 4).any():
                break
            want.append((n, level.size, int((counts == 4).sum())))
            level, n = parents[counts == 4], n // 2
        assert steps == want and plan == (1,) * len(want) + (0,) * (7 - len(want))
        s = HealpixSampling(nside, indices=idx)
        for _, pixels, kept in steps:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pool = HealpixPartialPool(s, 1)
            assert (pool.npix_in, pool.coarse.npix) == (pixels, kept)
            s = pool.coarse
    assert partial_sky_pool_plan(HealpixSampling(nside, indices=single), 3) == ((0, 0, 0), [])
    s = HealpixSampling(nside, indices=cap)
    full = partial_sky_pool_plan(s, 4)[1]
    assert [k for _, _, k in full] == [81, 15, 1]
    assert partial_sky_pool_plan(s, 4, lambda block, coarse: coarse.npix >= 20) == ((1, 0, 0, 0), full[:1])
    assert partial_sky_pool_plan(s, 4, lambda block, coarse: block < 2) == ((1, 1, 0, 0), full[:2])


def test_partial_sky_base_patch_drops_nothing():
    s = HealpixSampling.base_patch(8, 1, 5)
    coarse, keep = partial_sky_pool(s, 2)
    assert coarse.nside == 2 and keep.size == s.npix
    x = torch.randn(2, s.npix, 3)
    torch.testing.assert_close(HealpixPartialPool(s, 2, mode="avg")(x), HealpixAvgPool(2)(x))
    with pytest.raises(ValueError, match="pixels"):
        HealpixPartialPool(s, 1)(torch.randn(1, s.npix + 4, 1))


def test_equiangular_pool_on_driscoll_healy():
    s = DriscollHealySampling(8)  # 16 x 16 grid
    x = torch.randn(2, s.npix, 3, dtype=torch.float64)
    grid = x.numpy().reshape(2, 8, 2, 8, 2, 3)
    avg = EquiangularAvgPool(s)(x)
    np.testing.assert_allclose(avg.numpy(), grid.mean(axis=(2, 4)).reshape(2, 64, 3), rtol=1e-12)
    mx, idx = EquiangularMaxPool(s, return_indices=True)(x)
    np.testing.assert_array_equal(mx.numpy(), grid.max(axis=(2, 4)).reshape(2, 64, 3))
    torch.testing.assert_close(torch.gather(x, 1, idx), mx)
    assert mx.shape[1] == DriscollHealySampling(4).npix
    up = EquiangularUnpool(s)(avg)
    assert up.shape == x.shape
    np.testing.assert_array_equal(up.numpy().reshape(2, 8, 2, 8, 2, 3)[:, :, 1, :, 0], avg.numpy().reshape(2, 8, 8, 3))
    torch.testing.assert_close(EquiangularAvgPool(s)(up), avg)
    mu = EquiangularMaxUnpool(s)(mx, idx)
    assert torch.equal(torch.gather(mu, 1, idx), mx) and int((mu != 0).sum()) == mx.numel()
    # two levels at once equal two single levels
    torch.testing.assert_close(EquiangularAvgPool((16, 16), p=2)(x), EquiangularAvgPool((8, 8))(avg))
    with pytest.raises(ValueError, match="divisible"):
        EquiangularAvgPool((6, 10), p=2)
    with pytest.raises(ValueError, match="pixels"):
        EquiangularAvgPool(s)(torch.randn(1, 100, 1))
    # the pooled DH(4) pixels sit at the first (north-west) fine pixel of each block (the docstring's claim)
    coarse, fine = DriscollHealySampling(4), s
    np.testing.assert_array_equal(coarse.theta, fine.theta.reshape(8, 2, 8, 2)[:, 0, :, 0].ravel())
    np.testing.assert_array_equal(coarse.phi, fine.phi.reshape(8, 2, 8, 2)[:, 0, :, 0].ravel())


def test_equiangular_pool_refuses_grids_it_cannot_pool_and_says_why():
    """DH(L) with L not divisible by 2**p (was: accepted, a 9 x 9 grid that is no DH), GL and MW (was: 'not an
    equiangular sampling' for MW, which docs/conventions.md lists among the equiangular grids): GL fails the
    divisibility test, MW the shape test, and each message says why that grid never pools."""
    for layer in (EquiangularMaxPool, EquiangularAvgPool, EquiangularUnpool, EquiangularMaxUnpool):
        with pytest.raises(ValueError, match=r"DH\(L\) pools onto DH\(L / 2\*\*p\) only for L divisible by 2\*\*p = 2 "
                           r"\(p=1\); L = 9 would give a 9 x 9 grid that is no Driscoll-Healy grid"):
            layer(DriscollHealySampling(9))
        with pytest.raises(ValueError, match=r"only for L divisible by 2\*\*p = 4 \(p=2\); L = 6"):
            layer(DriscollHealySampling(6), p=2)
        with pytest.raises(ValueError, match=r"^grid 8 x 15 \(GaussLegendreSampling\(gl-L8, npix=120\)\) is not divisible by "
                           r"2\*\*p=2 in both directions: a Gauss-Legendre grid cannot be pooled .*nphi = 2L-1 = 15 is odd"):
            layer(GaussLegendreSampling(8))
        with pytest.raises(ValueError, match=r"^grid must be .* got McEwenWiauxSampling\(mw-L8, npix=106\): a McEwen-Wiaux "
                           "grid cannot be pooled .*pool a DriscollHealySampling"):
            layer(McEwenWiauxSampling(8))
    assert EquiangularMaxPool(DriscollHealySampling(12), p=2)(torch.randn(1, 576, 1)).shape == (1, 36, 1)  # DH(3)


@pytest.mark.filterwarnings("ignore:partial-sky pooling")
def test_pooling_layers_refuse_missing_values_unless_told_not_to_check():
    """NaN / UNSEEN passed through every pooling layer (docs/conventions.md: refused by check_finite, as ChebConv
    does); ``check_input=False`` (what the models build, checking their input once) passes them through."""
    from deepsphere_gen._validation import UNSEEN
    from deepsphere_gen.models.deepsphere import _pool

    s = HealpixSampling(4, indices=np.arange(3, 150))
    grid = (8, 16)
    x = torch.randn(2, 192, 3)
    cases = [(HealpixMaxPool, (1,), x), (HealpixAvgPool, (1,), x), (HealpixUnpool, (1,), x),
             (HealpixPartialPool, (s, 1), x[:, : s.npix]), (HealpixPartialUnpool, (s, 1), x[:, :36]),
             (EquiangularMaxPool, (grid, 1), x[:, :128]), (EquiangularAvgPool, (grid, 1), x[:, :128]),
             (EquiangularUnpool, (grid, 1), x[:, :32])]
    for layer, args, good in cases:
        assert torch.isfinite(layer(*args)(good)).all()
        bad = good.clone()
        bad[1, 5, 2] = float("nan") if layer is not HealpixAvgPool else UNSEEN
        with pytest.raises(ValueError, match=rf"^{layer.__name__} input has 1 NaN/inf/UNSEEN value\(s\); mask missing"):
            layer(*args)(bad)
        assert "check_input=False" in repr(layer(*args, check_input=False))
        layer(*args, check_input=False)(bad)  # passes through
    y, idx = HealpixMaxPool(1, return_indices=True)(x)
    with pytest.raises(ValueError, match="HealpixMaxUnpool input has 1 NaN"):
        HealpixMaxUnpool(1)(torch.where(y == y[0, 0, 0], float("nan"), y), idx)
    assert not _pool(HealpixSampling(4), 1, "max")[0].check_input  # the models check once, at their input
    assert not _pool(s, 1, "avg")[0].check_input


@pytest.mark.filterwarnings("ignore:partial-sky pooling")
def test_pooling_layers_pickled_before_check_input_existed_check():
    """A layer pickled before ``check_input`` existed has no such attribute: it checks, as the default does
    (HealpixMaxUnpool read the attribute: AttributeError)."""
    s = HealpixSampling(4, indices=np.arange(3, 150))
    x = torch.randn(2, 192, 3)
    y, idx = HealpixMaxPool(1, return_indices=True)(x)
    cases = [(HealpixMaxPool(1), (x,)), (HealpixAvgPool(1), (x,)), (HealpixUnpool(1), (x,)),
             (HealpixMaxUnpool(1), (y, idx)), (HealpixPartialPool(s, 1), (x[:, : s.npix],)),
             (HealpixPartialUnpool(s, 1), (x[:, :36],)), (EquiangularMaxPool((8, 16), 1), (x[:, :128],)),
             (EquiangularAvgPool((8, 16), 1), (x[:, :128],)), (EquiangularUnpool((8, 16), 1), (x[:, :32],))]
    for layer, args in cases:
        ref = layer(*args)
        del layer.check_input  # as an older pickle holds it
        assert torch.equal(layer(*args), ref) and "check_input" not in repr(layer)
        bad = args[0].clone()
        bad[1, 5, 2] = float("nan")
        with pytest.raises(ValueError, match=rf"^{type(layer).__name__} input has 1 NaN/inf/UNSEEN value"):
            layer(bad, *args[1:])


@pytest.mark.filterwarnings("ignore:partial-sky pooling")
def test_partial_and_equiangular_max_unpool_refuse_foreign_indices():
    """HealpixPartialUnpool(mode='max') and EquiangularMaxUnpool handed indices out of range (or another block's)
    went to torch unchecked: an index error, or a silently wrong map; now one ValueError as HealpixMaxUnpool's."""
    torch.manual_seed(0)
    s = HealpixSampling(4, indices=np.arange(3, 150))
    pool, unpool = HealpixPartialPool(s, 1, return_indices=True), HealpixPartialUnpool(s, 1, mode="max")
    y, idx = pool(torch.randn(2, s.npix, 3))
    up = unpool(y, idx)
    assert torch.equal(torch.gather(up, 1, idx), y)
    with pytest.raises(ValueError, match=r"^indices are not the argmax of HealpixPartialPool\(p=1\) of this map: index "
                                         rf"{s.npix} at coarse pixel 0 is outside the fine map's {s.npix} pixels$"):
        unpool(y, torch.where(idx == idx[0, 0, 0], s.npix, idx))
    with pytest.raises(ValueError, match=r"index 0 at coarse pixel 1 is not one of its children$"):
        unpool(y, torch.where(idx == idx[0, 1, 0], 0, idx))  # position 0 of the map: a dropped pixel's
    assert torch.equal(HealpixPartialUnpool(s, 1, mode="max", check_input=False)(y, idx), up)
    grid = (8, 16)
    y, idx = EquiangularMaxPool(grid, 1, return_indices=True)(torch.randn(2, 128, 3))
    up = EquiangularMaxUnpool(grid, 1)(y, idx)
    assert torch.equal(torch.gather(up, 1, idx), y)
    with pytest.raises(ValueError, match=r"argmax of EquiangularMaxPool\(\(8, 16\), p=1\) of this map: index 128 at "
                                         r"coarse pixel 0 is outside the fine map's 128 pixels$"):
        EquiangularMaxUnpool(grid, 1)(y, torch.where(idx == idx[0, 0, 0], 128, idx))
    with pytest.raises(ValueError, match=r"index 2 at coarse pixel 0 is not one of its children$"):
        EquiangularMaxUnpool(grid, 1)(y, torch.where(idx == idx[0, 0, 0], 2, idx))  # block 1's pixel


def test_a_traced_classifier_gives_the_eager_output():
    """torch.jit.trace of a DeepSphereClassifier failed: AttributeError 'Tensor' object has no attribute
    'bit_length' (the pooling's pixel count is a tensor under tracing), then the trace's sanity check (graphs
    differing across invocations: ChebConv's grad-mode flag, and the pooling's value "y" numbered after the
    ChebConvs' buffers, allocated in the trace and reused in the check's rerun: each trace now starts from empty
    buffers); the traced module gives the eager output, for another batch size too, also traced after an eager
    call."""
    import warnings

    torch.manual_seed(0)
    model = DeepSphereClassifier(8, 1, channels=(8, 8)).eval()
    x = torch.randn(2, 768, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning, the deprecation of torch.jit
        traced = torch.jit.trace(model, x)  # check_trace on (the default)
    for batch in (x, torch.randn(3, 768, 1)):
        torch.testing.assert_close(traced(batch), model(batch), rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = torch.jit.trace(model, x)  # the ChebConvs' buffers filled by the calls above
    unmangled = lambda t: re.sub(r"___torch_mangle_\d+\.", "", str(t.inlined_graph))  # noqa: E731
    assert unmangled(again) == unmangled(traced)  # the same ops and value names (was: "%y.1" here, "%y.3" there)


def test_an_nside_or_indices_given_for_a_sampling_is_named():
    """build_graph(8, k=8) and HealpixPartialPool(<index array>) failed with AttributeError "'int' object has
    no attribute 'npix'": one ValueError from one helper (sampling.check_sampling) naming what to pass."""
    from deepsphere_gen.graph import build_graph, knn_graph

    for call, match in [(lambda: build_graph(8, k=8), r"^sampling: expected a Sampling, e\.g\. HealpixSampling\(8\), "
                                                      r"got int 8 \(an nside\? pass HealpixSampling\(8\)\)$"),
                        (lambda: knn_graph(16), "expected a Sampling, e.g. HealpixSampling"),
                        (lambda: HealpixPartialPool(np.arange(10)), r"expected a HealpixSampling, e\.g\. HealpixSampling"
                                                                    r"\(8\), got ndarray \(pixel indices\? pass "
                                                                    r"HealpixSampling\(nside, indices=\.\.\.\)\)$"),
                        (lambda: HealpixPartialUnpool(4), "got int 4"),
                        (lambda: HealpixPartialPool(DriscollHealySampling(4)), "got DriscollHealySampling \\(this needs "
                                                                               "a HealpixSampling\\)")]:
        with pytest.raises(ValueError, match=match):
            call()
