"""The memory estimate of a HEALPix kNN build, and the refusal of a build that cannot fit."""
import tracemalloc

import numpy as np
import pytest

from deepsphere_gen.graph import _sphere_graph, build_graph, build_memory
from deepsphere_gen.sampling import HealpixSampling


def _peak_and_estimate(nside, k, indices=None):
    """(measured peak of the build's numpy arrays, build_memory's estimate) in bytes."""
    s = HealpixSampling(nside, indices=indices)
    tracemalloc.start()
    try:
        build_graph(s, k=k, cache=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, build_memory(s.npix, k, None if indices is None else s.npix_full)


@pytest.mark.parametrize("nside, k, indices", [(64, 20, None), (128, 20, None), (128, 8, None),
                                               (128, 20, np.arange(12 * 128**2 // 3))])
def test_estimate_bounds_the_arrays_a_build_allocates(nside, k, indices):
    """Every numpy array of the build (tracemalloc sees them all) fits in the estimate."""
    peak, need = _peak_and_estimate(nside, k, indices)
    assert peak <= need


def test_estimate_grows_as_the_build_does():
    """From nside 64 to 128 the estimate grows by at least the measured peak's growth and at most twice it (the
    fixed 128 MiB of block temporaries, which dominate both estimates here, cancel: its per-pixel terms are tested)."""
    (p64, n64), (p128, n128) = _peak_and_estimate(64, 20), _peak_and_estimate(128, 20)
    assert p128 - p64 <= n128 - n64 <= 2 * (p128 - p64)


def test_estimate_scales_with_the_pixels():
    per_pixel = [(build_memory(12 * n**2, 20) - (128 << 20)) / (12 * n**2) for n in (1024, 2048)]
    assert per_pixel[0] == pytest.approx(per_pixel[1], rel=1e-3)  # linear while the indices are int32
    assert build_memory(12 * 4096**2, 20) > 50 * 2**30  # int64 indices from nside 4096 (k = 20)


def test_estimate_takes_the_pattern_buffer_rule():
    """build_memory sizes the index buffer with healpix_knn_pattern's own rule (pattern_buffer; it
    kept a copy): at the first pixel count whose buffer takes int64 indices the estimate jumps by
    4 bytes per pattern entry; a built pattern's indices have the rule's dtype."""
    from deepsphere_gen.graph._pattern import healpix_knn_pattern, pattern_buffer

    k = 20
    n = int((2**31 - 1) // (k + 1 + k / 16))
    while pattern_buffer(n, k)[1] == np.int32:
        n += 1
    assert pattern_buffer(n - 1, k)[1] == np.int32 and pattern_buffer(n, k)[1] == np.int64
    assert build_memory(n, k) - build_memory(n - 1, k) >= 4 * n * (k + 1)  # 4 more bytes per pattern entry
    s = HealpixSampling(8)
    assert healpix_knn_pattern(s, 8, 1.0).indices.dtype == pattern_buffer(s.npix, 8)[1]


def test_build_that_cannot_fit_is_refused_with_one_line(tmp_path, monkeypatch):
    s = HealpixSampling(16)
    need = build_memory(s.npix, 8)
    monkeypatch.setattr(_sphere_graph, "available_memory", lambda: need - 1)
    with pytest.raises(MemoryError) as info:
        build_graph(s, k=8, cache_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for text in ("k=8", "nside 16", "3,072 pixels", f"~{need / 2**30:.1f} GiB", "available", "smaller nside or k",
                 "partial sky", "more memory"):
        assert text in message
    assert not (tmp_path / "graphs").exists()  # refused before anything was built or written
    monkeypatch.setattr(_sphere_graph, "available_memory", lambda: need)
    assert build_graph(s, k=8, cache_dir=tmp_path).npix == s.npix
    monkeypatch.setattr(_sphere_graph, "available_memory", lambda: None)  # unknown (not Linux): no check
    assert build_graph(s, k=8, cache=False).npix == s.npix


def test_model_at_a_resolution_that_cannot_fit_is_refused(monkeypatch):
    from deepsphere_gen.models import DeepSphereClassifier

    monkeypatch.setattr(_sphere_graph, "available_memory", lambda: 1 << 20)
    with pytest.raises(MemoryError, match="kNN graph of HEALPix nside 8 .* needs"):
        DeepSphereClassifier(nside=8, in_channels=1, n_classes=2, cache=False)
