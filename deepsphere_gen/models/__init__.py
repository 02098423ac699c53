"""Networks built from :mod:`deepsphere_gen.nn` (and only its public names).

| module | holds |
| --- | --- |
| :mod:`.deepsphere` | ``DeepSphereClassifier``, ``DeepSphereRegressor``, ``SphericalUNet`` (HEALPix NESTED, full / partial sky) and ``graph_encoder``, the conv + pool stack they share with the hybrid (HEALPix only) |
| :mod:`.harmonic` | ``HarmonicClassifier``: S2 input layer -> efficient generalized layers -> invariant readout |
| :mod:`.hybrid` | ``HybridClassifier``: graph blocks at high resolution, ``MapToSignal``, harmonic layers |
| :mod:`.classic` | ``CohenS2CNN``, ``EstevesS2CNN``, ``KondorCGNet``, ``CobbHybrid`` (spherical-MNIST architectures) |
| :mod:`.planar` | ``PlanarCNN``: the flat-image baseline |
| :mod:`.spec` | ``ModelSpec`` (frozen, JSON), ``build_model``, ``save_model`` / ``load_model`` (checkpoints that rebuild their model) |
"""
# graph models
from .deepsphere import DeepSphereClassifier, DeepSphereRegressor, SphericalUNet, graph_encoder
from .planar import PlanarCNN

# harmonic model
from .harmonic import HarmonicClassifier

# hybrid graph -> harmonic model
from .hybrid import HybridClassifier

# model specs and self-describing checkpoints
from .spec import ModelSpec, build_model, load_model, save_model

# classic spherical CNNs
from .classic import CobbHybrid, CohenS2CNN, EstevesS2CNN, KondorCGNet, classic_models

__all__ = [
    # graph models
    "DeepSphereClassifier",
    "DeepSphereRegressor",
    "SphericalUNet",
    "graph_encoder",
    "PlanarCNN",
    # harmonic model
    "HarmonicClassifier",
    # hybrid graph -> harmonic model
    "HybridClassifier",
    # classic spherical CNNs
    "CohenS2CNN",
    "EstevesS2CNN",
    "KondorCGNet",
    "CobbHybrid",
    "classic_models",
    # model specs and self-describing checkpoints
    "ModelSpec",
    "build_model",
    "save_model",
    "load_model",
]
