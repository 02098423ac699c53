"""Rotated copies of the mass maps: the identity gives the stored map back, a random rotation is the generator's
field evaluated at rotated positions (ducc0's synthesis at arbitrary points, scipy's rotation matrix: ground
truth independent of healpy.rotate_alm), rotations are uniform, and the cache is keyed, reused and lazy."""
import ducc0
import healpy as hp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from deepsphere_gen.datasets import (COSMOLOGIES, MassMapConfig, convergence_cl, generate_massmaps,
                                     generate_sky_rotations, load_massmaps, load_sky_rotations, lognormal_shift,
                                     rotated_map, sky_rotations_dir)
from deepsphere_gen.datasets._lognormal import field_variance, lognormal_gaussian_cl
from deepsphere_gen.datasets._shells import lensing_shells
from deepsphere_gen.datasets._sky_rotations import random_rotation, rotation_seed
from deepsphere_gen.datasets.massmaps import gaussian_alm, map_from_gaussian_alm, map_rng
from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen._seeds import derived_seeds


def test_identity_rotation_gives_the_stored_maps_back(tmp_path):
    config = MassMapConfig(nside=16, n_maps=3, seed=4)  # beam and pixel window: the whole generator
    maps, meta = load_massmaps(generate_massmaps(config, tmp_path, progress=False, verbose=False))
    std = meta["clean_std"]
    for c, i in [(0, 0), (1, 2)]:
        assert np.abs(rotated_map(config, c, i, [0.0, 0.0, 0.0]) - maps[c, i]).max() < 1e-6 * std  # float32 storage
    turned = rotated_map(config, 0, 0, random_rotation(rotation_seed(4), 0, 0, 0))
    assert np.abs(turned - maps[0, 0]).max() > 0.5 * std
    assert np.std(turned) == pytest.approx(np.std(maps[0, 0]), rel=0.2)  # the same field, elsewhere on the sky


@pytest.mark.parametrize("generator", ["shells", "lognormal", "gaussian"])
def test_random_rotation_is_the_field_at_rotated_positions(generator):
    """Without beam and pixel window a map is a pointwise function of its Gaussian field G at the pixel centres,
    so the rotated copy at x must be that function of G at M^T x, M the active rotation Rz(alpha) Ry(beta) Rz(gamma)
    of the ZYZ angles (alpha, beta, gamma) (the package's convention; scipy's intrinsic "ZYZ"); G at arbitrary points
    from ducc0."""
    config = MassMapConfig(nside=16, n_maps=2, seed=5, smoothing_arcmin=0.0, pixel_window=False, generator=generator)
    c, i, lmax, npix = 1, 1, config.band_limit, 12 * 16**2
    angles = random_rotation(rotation_seed(5), c, i, 0)
    got = rotated_map(config, c, i, angles)
    alm = gaussian_alm(COSMOLOGIES[c], config, map_rng(config, c, i))
    x = np.array(hp.pix2vec(16, np.arange(npix), nest=True)).T
    theta, phi = hp.vec2ang(x @ Rotation.from_euler("ZYZ", angles).as_matrix())  # rows: M^T x
    at_points = lambda a: ducc0.sht.synthesis_general(  # noqa: E731
        alm=a[None], spin=0, lmax=lmax, loc=np.stack([theta, phi], 1), epsilon=1e-12)[0]
    if generator == "shells":  # every shell's field at the rotated points, exponentiated, weighted and summed
        shells = lensing_shells(COSMOLOGIES[c], lmax)
        g = sum(w * np.expm1(at_points(a) - v / 2) for a, w, v in zip(alm, shells.weights, shells.var_gauss))
    else:
        g = at_points(alm)
    if generator == "lognormal":
        cosmo = COSMOLOGIES[c]
        shift = lognormal_shift(cosmo)
        g = shift * np.expm1(g - field_variance(lognormal_gaussian_cl(convergence_cl(cosmo, lmax), shift)) / 2)
    assert np.abs(got - g).max() < 1e-9 * np.std(g)
    assert np.abs(got - rotated_map(config, c, i, [0.0, 0.0, 0.0])).max() > 0.5 * np.std(g)  # a real rotation


def test_copies_are_those_of_the_recorded_recipe(tmp_path):
    """The copies (ROTATIONS_FORMAT 2, part of recorded runs) are bit for bit the recipe's: the draw of
    random_rotations passed to healpy.rotate_alm as its (psi, theta, phi); angles.npy holds those draws (recorded
    on the single log-normal maps)."""
    config = MassMapConfig(nside=8, n_maps=2, seed=3, generator="lognormal")
    folder = generate_sky_rotations(config, 2, 2, tmp_path, progress=False, verbose=False)
    maps, _ = load_sky_rotations(folder, 2)
    angles = np.load(folder / "angles.npy")
    for c in range(2):
        for i in range(2):
            for r in range(2):
                draw = random_rotations(1, seed=derived_seeds(rotation_seed(3), (c, i, r))[0])[0].numpy()
                alm = gaussian_alm(COSMOLOGIES[c], config, map_rng(config, c, i))
                hp.rotate_alm(alm, *draw, lmax=config.band_limit)
                want = map_from_gaussian_alm(alm, COSMOLOGIES[c], config).astype(np.float32)
                assert np.array_equal(maps[c, i * 2 + r], want) and np.array_equal(angles[c, i, r], draw)


@pytest.mark.parametrize("bad,match", [((0.1, 0.2), r"shaped \(\.\.\., 3\)"), ((0.1, 0.2, 0.3, 0.4), r"shaped \(\.\.\., 3\)"),
                                       ((np.nan, 0.0, 0.0), "NaN"), ([[0.1, 0.2, 0.3]], r"one rotation, shape \(3,\)")])
def test_rotated_map_checks_its_angles(bad, match):
    with pytest.raises(ValueError, match=match):
        rotated_map(MassMapConfig(nside=8, n_maps=1), 0, 0, bad)


def test_rotations_are_uniform_and_seeded():
    """Haar measure: the rotated z axis is uniform on the sphere (mean ~ 0, <z^2> ~ 1/3), and the rotated x axis
    about it too; the angles depend on (seed, class, map, copy) only."""
    seed = rotation_seed(0)
    mats = Rotation.from_euler("ZYZ", [random_rotation(seed, 0, i, 0) for i in range(4000)]).as_matrix()
    for axis in (2, 0):
        v = mats[:, :, axis]
        assert np.abs(v.mean(0)).max() < 0.05 and np.abs((v**2).mean(0) - 1 / 3).max() < 0.03
    assert np.array_equal(random_rotation(seed, 1, 2, 3), random_rotation(seed, 1, 2, 3))
    draws = {tuple(random_rotation(s, c, i, r)) for s, c, i, r in [(seed, 0, 0, 0), (seed, 1, 0, 0), (seed, 0, 1, 0),
                                                                    (seed, 0, 0, 1), (rotation_seed(1), 0, 0, 0)]}
    assert len(draws) == 5 and rotation_seed(0) != rotation_seed(1)


def test_cache_key_content_reuse_and_refusals(tmp_path):
    config = MassMapConfig(nside=8, n_maps=4, seed=1)
    base = sky_rotations_dir(config, 2, 2, tmp_path)
    others = [sky_rotations_dir(config, 2, 1, tmp_path), sky_rotations_dir(config, 3, 2, tmp_path),
              sky_rotations_dir(MassMapConfig(nside=8, n_maps=4, seed=2), 2, 2, tmp_path)]
    assert len({base, *others}) == 4
    folder = generate_sky_rotations(config, 2, 2, tmp_path, progress=False, verbose=False)
    assert folder == base
    maps, meta = load_sky_rotations(folder, 2)
    assert isinstance(maps, np.memmap) and maps.shape == (2, 4, 768) and maps.dtype == np.float32
    assert meta["generation"]["rotation_seed"] == rotation_seed(1) and meta["generation"]["copies"] == 2
    angles = np.load(folder / "angles.npy")
    for c, i, r in [(0, 0, 0), (1, 1, 1), (0, 1, 0)]:
        assert np.array_equal(angles[c, i, r], random_rotation(rotation_seed(1), c, i, r)[::-1])  # healpy's order
        assert np.array_equal(maps[c, i * 2 + r], rotated_map(config, c, i, angles[c, i, r][::-1]).astype(np.float32))
    stamp = (folder / "rotations.npy").stat().st_mtime_ns
    assert generate_sky_rotations(config, 2, 2, tmp_path, progress=False, verbose=False) == folder
    assert (folder / "rotations.npy").stat().st_mtime_ns == stamp  # reused, not regenerated
    with pytest.raises(ValueError, match="cannot rotate 5 maps"):
        generate_sky_rotations(config, 5, 1, tmp_path, progress=False, verbose=False)
    with pytest.raises(ValueError, match="copies"):
        generate_sky_rotations(config, 2, 0, tmp_path, progress=False, verbose=False)
    with pytest.raises(ValueError, match="holds 2 copies per map, not 3"):
        load_sky_rotations(folder, 3)


def test_generation_line_gives_the_estimate(tmp_path, capsys):
    """The copies' generation line gives their size and time, as the maps' line does (was: the size alone, no time:
    145 s at the default settings unannounced)."""
    from deepsphere_gen.datasets._massmaps_cache import estimate_cost
    from deepsphere_gen.datasets._sky_rotations import SECONDS_PER_COPY_1024

    generate_sky_rotations(MassMapConfig(nside=8, n_maps=2, seed=1), 2, 3, tmp_path, progress=False)
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "generating" in x]
    assert line.startswith("massmaps: generating 3 rotated copies of 2 maps x 2 classes at nside 8: ~0.0 MiB, ~")
    assert "s estimated (1 core) -> " in line
    nbytes, seconds = estimate_cost(256, 100, seconds_per_map_1024=SECONDS_PER_COPY_1024)
    assert nbytes == 100 * 12 * 256**2 * 4 and 120 < seconds < 130  # measured ~1.2 s per copy at nside 256
