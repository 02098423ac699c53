import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.sampling import HealpixSampling, base_patch_indices, check_nside


@pytest.mark.parametrize("nside", [1, 2, 16, 256, pytest.param(1024, marks=pytest.mark.slow)])
def test_coordinates_match_healpy_nested(nside):
    s = HealpixSampling(nside)
    assert s.npix == 12 * nside**2
    idx = np.unique(np.linspace(0, s.npix - 1, 500).astype(int))
    np.testing.assert_allclose(s.xyz[idx], np.array(hp.pix2vec(nside, idx, nest=True)).T, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(s.xyz[idx], axis=1), 1.0, atol=1e-14)
    assert s.weights.sum() == pytest.approx(4 * np.pi)
    assert s.pixel_area == pytest.approx(hp.nside2pixarea(nside))


@pytest.mark.parametrize("bad", [0, 3, 12, 2048 * 8, 1.5, "a"])
def test_bad_nside(bad):
    with pytest.raises(ValueError, match="nside"):
        check_nside(bad)


def test_parents_and_children_agree_with_ud_grade():
    nside = 8
    s = HealpixSampling(nside)
    m = np.random.default_rng(0).normal(size=s.npix)
    coarse = np.zeros(s.npix // 4)
    np.add.at(coarse, s.parents(1), m / 4)
    np.testing.assert_allclose(coarse, hp.ud_grade(m, nside // 2, order_in="NESTED", order_out="NESTED"))
    ch = HealpixSampling(nside // 2).children(1)
    assert np.array_equal(ch.ravel(), np.arange(s.npix))


def test_partial_sky_from_mask_and_coarsen():
    nside = 8
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[:70] = True  # 17 complete groups of 4, plus 2 pixels of an incomplete group
    s = HealpixSampling(nside, mask=mask)
    assert not s.is_full_sky and s.npix == 70
    coarse, keep = s.coarsen(1)
    assert coarse.npix == 17 and keep.sum() == 68 and not keep[68:].any()
    assert np.array_equal(coarse.indices, np.arange(17))
    with pytest.raises(ValueError, match="no complete parent"):
        HealpixSampling(nside, indices=[0, 5]).coarsen(1)
    with pytest.raises(ValueError, match="complete rings"):
        s.rings()


@pytest.mark.parametrize("nside", [1, 4, 16])
def test_full_sky_coarsen_is_the_general_path_without_its_cost(nside):
    """The full-sky shortcut gives what the general path (parents sorted and counted) gives: a sky missing one
    pixel loses that pixel's parent and its 4**levels children only; and it allocates ~1 byte per pixel (the
    general path ~40: 2.3 GB at nside 2048)."""
    import tracemalloc

    npix = 12 * nside**2
    for levels in range(nside.bit_length()):
        coarse, keep = HealpixSampling(nside).coarsen(levels)
        assert coarse.nside == nside >> levels and coarse.is_full_sky and keep.dtype == bool and keep.all()
        assert np.array_equal(coarse.indices, np.arange(12 * (nside >> levels) ** 2))
        missing = npix // 3
        part, part_keep = HealpixSampling(nside, indices=np.delete(np.arange(npix), missing)).coarsen(levels)
        assert np.array_equal(part.indices, np.delete(coarse.indices, missing >> 2 * levels))
        lost = np.arange(npix) >> 2 * levels == missing >> 2 * levels
        assert np.array_equal(part_keep, np.delete(keep & ~lost, missing))
    s = HealpixSampling(256)
    tracemalloc.start()
    try:
        s.coarsen(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * s.npix  # bytes; the general path: ~40 per pixel


def test_partial_sky_errors():
    with pytest.raises(ValueError, match="empty"):
        HealpixSampling(4, mask=np.zeros(192, dtype=bool))
    with pytest.raises(ValueError, match="sorted"):
        HealpixSampling(4, indices=[3, 1])
    with pytest.raises(ValueError, match=r"mask must have shape \(192,\) for nside 4"):
        HealpixSampling(4, mask=np.zeros(100, dtype=bool))


def test_ring_mask_selects_the_same_sky_as_healpy():
    """A polar cap from hp.query_disc in RING order, given with order="RING", selects the
    NESTED pixels healpy's query_disc(nest=True) returns; read as NESTED (the default) it
    would be another region (the mask is taken in the order it is declared in)."""
    nside = 16
    npix = 12 * nside**2
    cap = hp.query_disc(nside, hp.ang2vec(0.0, 0.0), np.radians(30))  # RING indices
    ring_mask = np.zeros(npix, bool)
    ring_mask[cap] = True
    s = HealpixSampling(nside, mask=ring_mask, order="RING")
    np.testing.assert_array_equal(s.indices, np.sort(hp.query_disc(nside, hp.ang2vec(0.0, 0.0), np.radians(30),
                                                                   nest=True)))
    assert s.theta.max() < np.radians(31)
    assert HealpixSampling(nside, mask=ring_mask, order="ring").indices.tolist() == s.indices.tolist()
    nested_reading = HealpixSampling(nside, mask=ring_mask)  # default order: NESTED, unchanged
    np.testing.assert_array_equal(nested_reading.indices, np.flatnonzero(ring_mask))
    with pytest.raises(ValueError, match="'NESTED' or 'RING'"):
        HealpixSampling(nside, mask=ring_mask, order="GALACTIC")
    with pytest.raises(ValueError, match="applies to mask"):
        HealpixSampling(nside, indices=cap, order="RING")


def test_indices_must_be_integers():
    """Float indices are not truncated ([1.0, 2.5, 7.9] was read as [1, 2, 7]); integral floats are refused too,
    with the cast as remedy (docs/conventions.md; they were accepted); a boolean mask given as indices is named (it
    was 'must be sorted and unique')."""
    with pytest.raises(ValueError, match=r"non-integer value\(s\) \[2.5, 7.9\]"):
        HealpixSampling(16, indices=np.array([1.0, 2.5, 7.9]))
    with pytest.raises(ValueError, match="non-integer"):
        HealpixSampling(16, indices=[1, float("nan")])
    with pytest.raises(ValueError, match="boolean mask: use mask="):
        HealpixSampling(4, indices=np.ones(192, bool))
    with pytest.raises(ValueError, match="must be an integer array, got dtype <U1"):
        HealpixSampling(4, indices=np.array(["1", "2"]))
    with pytest.raises(ValueError, match=r"^indices must be an integer array, got dtype float64 of whole numbers: "
                                         r"cast it, e.g. indices.astype\(np.int64\)$"):
        HealpixSampling(16, indices=np.arange(64.0))
    assert HealpixSampling(16, indices=np.arange(64.0).astype(np.int64)).npix == 64  # the remedy works
    assert HealpixSampling(16, indices=[1, 2, 7]).indices.tolist() == [1, 2, 7]  # a list of ints
    assert HealpixSampling(16, indices=np.array([1, 2, 7], np.uint16)).indices.dtype == np.int64


@pytest.mark.parametrize("level", [0, 1, 2])
def test_base_patches_tile_the_sky(level):
    nside = 16
    patches = [base_patch_indices(nside, level, i) for i in range(12 * 4**level)]
    assert np.array_equal(np.concatenate(patches), np.arange(12 * nside**2))
    s = HealpixSampling.base_patch(nside, level, 1)
    assert s.sky_fraction == pytest.approx(1 / (12 * 4**level))
    with pytest.raises(ValueError):
        base_patch_indices(nside, level, 12 * 4**level)


def test_rings_reorder_nested_to_ring():
    nside = 4
    s = HealpixSampling(nside)
    r = s.rings()
    assert r.nrings == 4 * nside - 1 and r.nphi.sum() == s.npix
    theta_ring, phi_ring = hp.pix2ang(nside, np.arange(s.npix))  # RING order
    np.testing.assert_allclose(s.theta[r.order], theta_ring)
    np.testing.assert_allclose(s.phi[r.order], phi_ring)
    first = r.start
    np.testing.assert_allclose(phi_ring[first], r.phi0)
    np.testing.assert_allclose(theta_ring[first], r.theta)


@pytest.mark.parametrize("indices", [None, np.arange(100, 3000, 7)])
def test_xyz_of_equals_rows_of_xyz_bitwise(indices):
    """The graph's values pass computes coordinates block by block with xyz_of: they must equal
    the rows of xyz (what the neighbour search used) bit for bit, for any subset and order."""
    s = HealpixSampling(32, indices=indices)
    xyz = s.xyz
    rng = np.random.default_rng(0)
    for size in (1, 5, 17, 300, s.npix):
        pix = rng.choice(s.npix, size=size, replace=False)
        got = np.stack(s.xyz_of(pix), axis=-1)
        assert np.array_equal(got.view(np.uint64), xyz[pix].view(np.uint64))
    assert np.array_equal(np.stack(s.xyz_of(slice(10, 20)), axis=-1), xyz[10:20])


def test_full_sky_indices_made_on_demand():
    s = HealpixSampling(8)
    assert s._indices is None  # not kept until asked for
    assert np.array_equal(s.indices, np.arange(12 * 64))
    assert s.indices is s.indices
    assert np.array_equal(HealpixSampling(8, indices=np.arange(5, 9)).indices, np.arange(5, 9))


@pytest.mark.parametrize("partial", [False, True])
def test_coordinates_made_on_demand_in_chunks_equal_healpy(partial, monkeypatch):
    """Construction computes no coordinates (HealpixSampling(2048) peaked at +1.15 GiB); the
    first access makes them chunk by chunk, equal bit for bit to one hp.pix2ang call."""
    nside = 16
    idx = np.arange(3, 12 * nside**2, 7) if partial else None
    s = HealpixSampling(nside, indices=idx)
    assert s._coords is None and s.npix == (idx.size if partial else 12 * nside**2)
    repr(s), s.cache_key(), s.weights, s.is_full_sky  # none of these needs coordinates
    assert s._coords is None
    monkeypatch.setattr(HealpixSampling, "COORD_CHUNK", 100)  # many chunks, a ragged last one
    theta, phi = hp.pix2ang(nside, s.indices, nest=True)
    np.testing.assert_array_equal(s.theta, theta)
    np.testing.assert_array_equal(s.phi, phi)
    assert s.theta is s.theta  # kept


@pytest.mark.parametrize("indices", [None, np.arange(100, 3000, 7)])
def test_xyz_of_few_pixels_makes_no_coordinates_and_equals_stored(indices, monkeypatch):
    """xyz_of of up to COORD_CHUNK pixels computes their angles only (what a graph's values pass
    asks for, block by block): the same bits as the stored coordinates, which stay unmade."""
    nside = 32
    s = HealpixSampling(nside, indices=indices)
    ref = HealpixSampling(nside, indices=indices)
    ref.theta  # stored coordinates: xyz_of then reads them
    rng = np.random.default_rng(1)
    picks = [rng.choice(s.npix, size=300, replace=False), np.array([-1, -s.npix, 0, 5]), np.arange(7, dtype=np.int32),
             slice(10, 2000, 3), slice(None, None, -5), slice(None)]
    for pix in picks:
        for a, b in zip(s.xyz_of(pix), ref.xyz_of(pix)):
            assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    assert np.array_equal(s.xyz.view(np.uint64), ref.xyz.view(np.uint64))
    assert s._coords is None
    monkeypatch.setattr(HealpixSampling, "COORD_CHUNK", 100)  # over the limit: the stored coordinates are made
    for a, b in zip(s.xyz_of(slice(0, 101)), ref.xyz_of(slice(0, 101))):
        assert np.array_equal(a, b)
    assert s._coords is not None
    with pytest.raises(IndexError):
        HealpixSampling(nside, indices=indices).xyz_of(np.array([s.npix]))


def test_a_sampling_pickled_with_stored_coordinates_still_loads():
    """A HealpixSampling pickled by the code that stored theta and phi as attributes (before they were made
    lazily: a whole model saved with torch.save(model)) unpickles with those coordinates; a current one
    round-trips with its coordinates not yet made."""
    import pickle

    old = HealpixSampling.__new__(HealpixSampling)
    theta, phi = hp.pix2ang(4, np.arange(192), nest=True)
    old.__dict__.update(nside=4, npix_full=192, _indices=None, _full=True, theta=theta, phi=phi)  # the old layout
    loaded = pickle.loads(pickle.dumps(old))
    np.testing.assert_array_equal(loaded.theta, theta)
    np.testing.assert_array_equal(loaded.phi, phi)
    assert loaded.npix == 192
    new = pickle.loads(pickle.dumps(HealpixSampling(4, indices=np.arange(0, 192, 3))))
    assert new._coords is None and new.npix == 64
    np.testing.assert_array_equal(new.theta, hp.pix2ang(4, np.arange(0, 192, 3), nest=True)[0])
