"""Which mass-map method runs on which sky: a new baseline is classed by its feature groups (one rule,
``config.patch_only``), refused clearly where it cannot run, and noted where it skips a sky fraction."""
import pytest

from deepsphere_gen.commands import _massmaps_checks as checks
from deepsphere_gen.experiments import massmaps as exp
from deepsphere_gen.experiments.massmaps import config as mm_config
from deepsphere_gen.experiments.massmaps.baseline_records import baseline_records
from deepsphere_gen.experiments.massmaps.features import FEATURE_GROUPS


@pytest.fixture
def toy_method(monkeypatch):
    """``toy_svm``, a baseline on the patch-only ``moments`` group, registered as the "adding a method" recipe
    of the package docstring says (config.METHODS, BASELINES, BASELINE_FEATURES)."""
    monkeypatch.setattr(mm_config, "METHODS", (*mm_config.METHODS, "toy_svm"))
    monkeypatch.setattr(mm_config, "BASELINES", (*mm_config.BASELINES, "toy_svm"))
    monkeypatch.setitem(mm_config.BASELINE_FEATURES, "toy_svm", ("moments",))
    return "toy_svm"


def test_existing_methods_keep_their_skies():
    assert exp.PATCH_METHODS == ("strong_svm",)
    assert set(exp.SKY_FEATURE_GROUPS) < set(FEATURE_GROUPS)
    full, patch = exp.parse_sky_fraction("1", 16), exp.parse_sky_fraction("1/12", 16)
    assert exp.methods_for(full, exp.METHODS) == ["fcn", "cnn", "harmonic", "hybrid", "psd_svm", "hist_svm"]
    assert exp.methods_for(patch, exp.METHODS) == ["fcn", "cnn", "psd_svm", "hist_svm", "strong_svm"]


def test_a_new_baseline_with_patch_only_features_is_classed_patch_only(toy_method):
    assert exp.patch_only(toy_method) and not exp.patch_only("psd_svm") and not exp.patch_only("fcn")
    full, patch = exp.parse_sky_fraction("1", 16), exp.parse_sky_fraction("1/12", 16)
    assert exp.methods_for(full, (toy_method, "psd_svm")) == ["psd_svm"]
    assert exp.methods_for(patch, (toy_method, "psd_svm")) == [toy_method, "psd_svm"]
    # the full sky alone: refused before any work, naming the method and where it runs (was: the data generated,
    # then "need at least one array to concatenate")
    config = exp.ExperimentConfig(nside=16, sky_fractions=("1",), methods=(toy_method,))
    with pytest.raises(ValueError, match=r"--methods toy_svm: toy_svm runs only on nested patches .*, not on "
                                         r"--sky-fractions 1$"):
        checks.check_methods(config, "run", True)


def test_baseline_records_refuse_a_patch_only_method_on_the_full_sky(toy_method, tmp_path):
    config = exp.ExperimentConfig(nside=16, sky_fractions=("1",), methods=(toy_method,))
    sky = exp.parse_sky_fraction("1", 16)
    with pytest.raises(ValueError, match="toy_svm: feature groups beyond psd/hist exist on nested patches only, "
                                         "not on sky 1"):
        baseline_records(tmp_path / "absent", sky, exp.NoiseSetting("none"), config, [toy_method])


def test_a_given_method_that_skips_some_sky_fractions_gets_a_note(toy_method):
    config = exp.ExperimentConfig(nside=16, sky_fractions=("1", "1/12"), methods=(toy_method, "harmonic", "psd_svm"))
    assert checks.check_methods(config, "run", True) == (config, [
        "massmaps: note: toy_svm runs only on nested patches (sky fractions 1/12, 1/48, 1/192, ...): skipped on "
        "sky fraction 1; harmonic runs only on the full sky (sky fraction 1): skipped on sky fraction 1/12"])
    assert checks.check_methods(config, "generate", True) == (config, [])
    # the default list's split is the documented one: no note
    assert checks.check_methods(exp.ExperimentConfig(nside=16, sky_fractions=("1", "1/12")), "run", False)[1] == []


def test_every_sky_feature_group_has_an_extractor():
    """Each group the full sky and footprints are said to have (config.SKY_FEATURE_GROUPS, the rule patch_only reads)
    is an extractor of the sky features, which is what their transform calls."""
    import numpy as np

    from deepsphere_gen.experiments.massmaps.baseline_records import _SkyFeatures
    from deepsphere_gen.experiments.massmaps.config import SKY_FEATURE_GROUPS

    sky = _SkyFeatures(4, 0, np.arange(192))
    assert all(callable(getattr(sky, g).features) for g in SKY_FEATURE_GROUPS)


def test_the_default_k_on_a_tiny_input_gives_the_network_it_gave():
    """The library refuses k >= the input's pixels; a 4-pixel 1/192 patch at nside 8 with the default
    k = 8 keeps its complete graph (k = 3, as the library's cap made it before) through build_model's own cap."""
    import numpy as np

    from deepsphere_gen.experiments.massmaps import ExperimentConfig
    from deepsphere_gen.experiments.massmaps.models import build_model
    from deepsphere_gen.graph import build_graph
    from deepsphere_gen.nn import ChebConv

    config = ExperimentConfig(nside=8, sky_fractions=("1/192",))
    sky = mm_config.sky_settings(config)[0]
    model = build_model("fcn", sky, config, scale=1.0)
    conv = next(m for m in model.modules() if isinstance(m, ChebConv))
    ref = build_graph(model.model.sampling, k=3, cache=False)
    assert config.k == 8 and ref.npix == 4
    assert np.allclose(conv.laplacian.to_dense().numpy(), ref.rescaled_laplacian().toarray(), atol=1e-7)
