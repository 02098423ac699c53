"""Projection of flat images onto the sphere (stereographic, tangent at the south pole) and back."""
import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from deepsphere_gen.datasets import BackProjection, load_sklearn_digits, plane_to_sphere, project_images, sphere_to_plane
from deepsphere_gen.datasets._projection import DEFAULT_FRAME, HALF_WIDTH
from deepsphere_gen.harmonic import euler_to_matrix, random_rotations
from deepsphere_gen.sampling import DriscollHealySampling, HealpixSampling

RNG = np.random.default_rng(1)
SOUTH = np.array([0.0, 0.0, -1.0])


def random_unit(n):
    v = RNG.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def pixel_centres(H, W, a=HALF_WIDTH):
    u = -a + (np.arange(H) + 0.5) * 2 * a / H
    v = -a + (np.arange(W) + 0.5) * 2 * a / W
    return np.meshgrid(u, v, indexing="ij")


def south_point(u, v):
    """Analytic inverse: angle t from the south pole with plane radius r = 2 tan(t / 2), azimuth of (u, v)."""
    r = np.hypot(u, v)
    t = 2 * np.arctan(r / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cu, cv = np.where(r > 0, u / r, 0.0), np.where(r > 0, v / r, 0.0)
    return np.stack([np.sin(t) * cu, np.sin(t) * cv, -np.cos(t)], axis=-1)


def test_plane_coordinates_analytic():
    u, v, front = sphere_to_plane(np.array([SOUTH, [1, 0, 0], [0, -1, 0], [0, 0, 1]]))
    np.testing.assert_allclose(u[:3], [0, 2, 0], atol=1e-15)
    np.testing.assert_allclose(v[:3], [0, 0, -2], atol=1e-15)
    np.testing.assert_array_equal(front, [True, True, True, False])
    w = random_unit(200)
    u, v, front = sphere_to_plane(w)
    angle = np.arccos(np.clip(-w[:, 2], -1, 1))  # from the tangent point
    np.testing.assert_allclose(np.hypot(u, v)[front], 2 * np.tan(angle[front] / 2), rtol=1e-12)
    np.testing.assert_array_equal(front, w[:, 2] <= 0)


def test_plane_to_sphere_is_the_inverse():
    uu, vv = pixel_centres(7, 5)
    w = plane_to_sphere(uu, vv)
    np.testing.assert_allclose(w, south_point(uu, vv), atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(w, axis=-1), 1, atol=1e-14)
    u, v, front = sphere_to_plane(w)
    assert front.all()
    np.testing.assert_allclose(u, uu, atol=1e-13)
    np.testing.assert_allclose(v, vv, atol=1e-13)
    np.testing.assert_allclose(plane_to_sphere(0.0, 0.0), SOUTH, atol=1e-15)


def test_centre_pixel_lands_on_tangent_point():
    img = np.zeros((1, 9, 9))
    img[0, 4, 4] = 3.0
    hp16 = HealpixSampling(16)
    pts = np.vstack([SOUTH, hp16.xyz])
    x = project_images(img, pts, dtype=torch.float64)[0, :, 0].numpy()
    assert x[0] == pytest.approx(3.0, abs=1e-12)
    assert x.max() == pytest.approx(3.0, abs=1e-12)
    # the brightest HEALPix pixel is one of those touching the south pole
    assert hp16.xyz[np.argmax(x[1:]), 2] < -0.99


def test_pixel_centres_and_orientation():
    H, W = 6, 5
    img = RNG.random((1, H, W))
    uu, vv = pixel_centres(H, W)
    x = project_images(img, south_point(uu, vv).reshape(-1, 3), dtype=torch.float64)[0, :, 0].numpy()
    np.testing.assert_allclose(x, img[0].ravel(), atol=1e-12)
    # rows run along +x, columns along +y (gendata's frame)
    one = np.zeros((1, H, W))
    one[0, -1, 2] = 1.0
    hp = HealpixSampling(16)
    x = project_images(one, hp, dtype=torch.float64)[0, :, 0].numpy()
    peak = hp.xyz[np.argmax(x)]
    assert peak[0] > 0.4 and abs(peak[1]) < 0.2 and peak[2] < 0


def test_bilinear_matches_scipy_and_range():
    img = RNG.random((2, 8, 7)) * 16
    hp = HealpixSampling(16)
    x = project_images(img, hp, dtype=torch.float64)[..., 0].numpy()
    u, v, front = sphere_to_plane(hp.xyz)
    rows = (u + HALF_WIDTH) / (2 * HALF_WIDTH) * 8 - 0.5
    cols = (v + HALF_WIDTH) / (2 * HALF_WIDTH) * 7 - 0.5
    for k in range(2):
        ref = map_coordinates(img[k], [rows, cols], order=1, mode="grid-constant", cval=0.0) * front
        np.testing.assert_allclose(x[k], ref, atol=1e-12)
    assert x.min() >= 0 and x.max() <= img.max()
    assert np.all(x[:, hp.xyz[:, 2] > 1e-9] == 0)  # the northern hemisphere stays empty
    assert np.count_nonzero(x[0]) > 0.4 * hp.npix


def test_dh_and_healpix_consistent():
    img = RNG.random((1, 8, 8))
    dh, hp = DriscollHealySampling(30), HealpixSampling(32)
    x_dh = project_images(img, dh, dtype=torch.float64)[0, :, 0].numpy()
    x_hp = project_images(img, hp, dtype=torch.float64)[0, :, 0].numpy()
    both = project_images(img, np.vstack([dh.xyz, hp.xyz]), dtype=torch.float64)[0, :, 0].numpy()
    np.testing.assert_array_equal(both, np.concatenate([x_dh, x_hp]))
    # both grids integrate the same spherical function
    i_dh, i_hp = x_dh @ dh.weights, x_hp @ hp.weights
    assert i_dh == pytest.approx(i_hp, rel=5e-3)
    assert i_dh > 0.5


# R, and the same rotation written as the rotated frame (e_u, e_v, c) by hand
SIMPLE = [
    ((np.pi, np.pi, 0.0), [[1, 0, 0], [0, -1, 0], [0, 0, 1]]),  # pi about x: tangent at the north pole
    ((0.7, 0.0, 0.0), [[np.cos(0.7), np.sin(0.7), 0], [-np.sin(0.7), np.cos(0.7), 0], [0, 0, -1]]),
    ((0.0, np.pi / 2, 0.0), [[0, 0, -1], [0, 1, 0], [-1, 0, 0]]),  # tangent at -x
]


@pytest.mark.parametrize("angles, frame_columns", SIMPLE)
def test_rotation_by_points_equals_rotated_tangent_frame(angles, frame_columns):
    img = RNG.random((1, 8, 8))
    frame = np.array(frame_columns, dtype=np.float64).T
    hp = HealpixSampling(16)
    rotated = project_images(img, hp, np.array([angles]), dtype=torch.float64)
    reframed = project_images(img, hp, frame=frame, dtype=torch.float64)
    np.testing.assert_allclose(rotated.numpy(), reframed.numpy(), atol=1e-12)
    assert np.count_nonzero(rotated.numpy()) > 0.3 * hp.npix


def test_rotation_moves_the_centre_to_R_c():
    img = np.zeros((3, 9, 9))
    img[:, 4, 4] = 1.0
    angles = random_rotations(3, seed=5)
    mats = np.asarray(euler_to_matrix(angles), dtype=np.float64)
    targets = np.einsum("nij,j->ni", mats, SOUTH)
    x = project_images(img, targets, angles, dtype=torch.float64).numpy()
    np.testing.assert_allclose(np.diagonal(x[..., 0]), 1.0, atol=1e-12)


def test_rotation_composition_and_batching():
    img = RNG.random((5, 8, 8))
    r1, r2 = random_rotations(5, seed=2), random_rotations(5, seed=3)
    m1 = np.asarray(euler_to_matrix(r1), dtype=np.float64)
    m2 = np.asarray(euler_to_matrix(r2), dtype=np.float64)
    hp = HealpixSampling(8)
    both = project_images(img, hp, m1 @ m2, chunk=2, dtype=torch.float64).numpy()
    for k in range(5):
        # (R1 R2 f)(w) = (R2 f)(R1^T w)
        pts = hp.xyz @ m1[k]
        twice = project_images(img[k : k + 1], pts, r2[k : k + 1], dtype=torch.float64).numpy()
        np.testing.assert_allclose(both[k], twice[0], atol=1e-12)
        single = project_images(img[k : k + 1], hp, m1[k : k + 1] @ m2[k : k + 1], dtype=torch.float64).numpy()
        np.testing.assert_array_equal(both[k], single[0])
    # undoing the rotation gives the unrotated projection back
    back = project_images(img, hp, np.einsum("nji->nij", m1) @ m1, dtype=torch.float64).numpy()
    np.testing.assert_allclose(back, project_images(img, hp, dtype=torch.float64).numpy(), atol=1e-12)


def test_dtype_and_torch_input():
    img = torch.rand(2, 8, 8)
    x32 = project_images(img, HealpixSampling(4))
    x64 = project_images(img.double(), HealpixSampling(4), dtype=torch.float64)
    assert x32.dtype == torch.float32 and x64.dtype == torch.float64 and x32.shape == (2, 192, 1)
    torch.testing.assert_close(x32.double(), x64, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images=np.zeros((8, 8))), r"\(n, height, width\)"),
        (dict(images=np.full((1, 8, 8), np.nan)), "NaN"),
        (dict(rotations=np.zeros((2, 3))), r"\(1, 3\) ZYZ"),
        (dict(rotations=np.ones((1, 3, 3))), "orthogonal"),
        (dict(where=np.ones((4, 3))), "unit vectors"),
        (dict(where=np.ones(3)), r"\(npix, 3\)"),
        (dict(frame=np.ones((3, 3))), "orthonormal"),
        (dict(half_width=-1.0), "half_width"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(images=np.ones((1, 8, 8)), where=HealpixSampling(2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        project_images(args.pop("images"), args.pop("where"), **args)


def test_back_projection_exact_on_the_plane_grid():
    img = RNG.random((3, 7, 6))
    uu, vv = pixel_centres(7, 6)
    pts = np.vstack([plane_to_sphere(uu.ravel(), vv.ravel()), random_unit(50)])
    maps = project_images(img, pts, dtype=torch.float64)
    bp = BackProjection(pts, (7, 6)).to(torch.float64)
    out = bp(maps)
    assert out.shape == (3, 1, 7, 6) and out.dtype == torch.float64
    inside = (uu**2 + vv**2 <= 4)
    np.testing.assert_allclose(out[:, 0].numpy(), img * inside, atol=1e-12)


def test_back_projection_round_trip_on_healpix():
    # a smooth blob survives projection + back-projection at nside 32 (IDW interpolation error)
    uu, vv = pixel_centres(16, 16)
    img = np.exp(-((uu - 0.3) ** 2 + vv**2) / 0.5)[None]
    hp = HealpixSampling(32)
    out = BackProjection(hp, 16)(project_images(img, hp))[0, 0].numpy()
    assert np.abs(out - img[0]).max() < 0.03


def test_back_projection_errors():
    with pytest.raises(ValueError, match="size"):
        BackProjection(HealpixSampling(2), 0)
    bp = BackProjection(HealpixSampling(2), 4)
    with pytest.raises(ValueError, match=r"\(batch, 48, channels\)"):
        bp(torch.zeros(1, 47, 1))


def test_default_frame_is_gendata():
    # gendata: sphere shifted to (0, 0, 1), rays from (0, 0, 2) to the plane z = 0, image on [-1.5, 1.5]^2
    w = random_unit(100)
    w = w[w[:, 2] < 0]
    z = w[:, 2] + 1
    t = -z / (z - 2)
    qx, qy = t * w[:, 0] + w[:, 0], t * w[:, 1] + w[:, 1]
    u, v, _ = sphere_to_plane(w, DEFAULT_FRAME)
    np.testing.assert_allclose(u, qx, atol=1e-12)
    np.testing.assert_allclose(v, qy, atol=1e-12)


def test_harmonic_rotation_agrees_with_point_rotation():
    """Rotating the projection through the SHT == rotating the sample points, up to aliasing.

    The projected digit is not band-limited, so both are compared band-limited to L = 8:
    rotate_map(projection) against synthesis(analysis(point-rotated projection)) on
    DH(Lh), float64.  The only difference is the aliasing of power above Lh into
    l < L, which falls fast with Lh (measured: 8e-3 at Lh = 16, 1.4e-3 at Lh = 32,
    1.8e-4 at Lh = 64, relative 2-norm); a convention mismatch would give O(1).
    """
    from deepsphere_gen.harmonic import analysis, synthesis

    img = load_sklearn_digits()[0][:3] / 16
    angles = random_rotations(3, seed=0)
    errs = []
    for Lh in (16, 32):
        dh = DriscollHealySampling(Lh)
        harm = project_images(img, dh, angles, method="harmonic", L=8, dtype=torch.float64)
        pts = project_images(img, dh, angles, dtype=torch.float64)
        ref = synthesis(analysis(pts, dh, 8), dh, 8)
        errs.append(float(((harm - ref).norm(dim=(1, 2)) / ref.norm(dim=(1, 2))).max()))
    assert errs[1] < 2e-3
    assert errs[1] < errs[0] / 3
    with pytest.raises(ValueError, match="needs a Sampling"):
        project_images(img, DriscollHealySampling(8).xyz, angles, method="harmonic", L=8)
    with pytest.raises(ValueError, match="method"):
        project_images(img, DriscollHealySampling(8), angles, method="wigner")


def test_harmonic_rotation_bandlimit_default():
    """L defaults to an equiangular grid's bandlimit; HEALPix has none: L must be given, and the
    error says so (its docstring said L defaulted to the sampling's own bandlimit)."""
    img = load_sklearn_digits()[0][:2] / 16
    angles = random_rotations(2, seed=1)
    dh = DriscollHealySampling(8)
    assert torch.equal(project_images(img, dh, angles, method="harmonic"),
                       project_images(img, dh, angles, method="harmonic", L=8))
    hp16 = HealpixSampling(16)
    with pytest.raises(ValueError, match=r"give the bandlimit L for HealpixSampling\(.*no exact bandlimit.*L <= 48"):
        project_images(img, hp16, angles, method="harmonic")
    assert project_images(img, hp16, angles, method="harmonic", L=32).shape == (2, hp16.npix, 1)
