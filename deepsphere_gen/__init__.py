"""deepsphere_gen: deep learning on the sphere with graph, harmonic and hybrid spherical CNNs.

Layers, each importing only the ones before it (enforced by tests/test_architecture.py;
docs/architecture.md describes them, docs/conventions.md the data conventions):

| layer | what it holds |
| --- | --- |
| :mod:`.sampling` | where the pixels are: HEALPix (NESTED, full / partial sky), equiangular and SO(3) grids |
| :mod:`.graph` | graphs on a sampling (kNN, grid, optimised), Laplacians, disk cache |
| :mod:`.harmonic` | spherical harmonic and Wigner transforms, rotations, Clebsch-Gordan tensors, mixing sets |
| :mod:`.nn` | layers: ChebConv and pooling (graph), generalized-signal layers (harmonic), adapters between them |
| :mod:`.equivariance` | the equivariance error, its test helpers (``assert_equivariant``, ``assert_map_equivariant``) |
| :mod:`.models` | networks: DeepSphere classifier / regressor / UNet, harmonic, hybrid, classic, planar |
| :mod:`.datasets` | data generation: spherical digits, cosmological mass maps, footprints, shape noise |
| :mod:`.training` | the training loop, checkpoints, distributed helpers |
| :mod:`.experiments` | one module or subpackage per experiment (config dataclass + run), called by the commands |
| :mod:`.bench` | benchmark harness and suites (``deepsphere-gen bench``) |
| :mod:`.commands`, :mod:`.cli` | the ``deepsphere-gen`` command and its sub-commands |

Shared utilities: :mod:`._validation` (input checks), :mod:`._io` (atomic writes), :mod:`._cache_dirs`,
:mod:`._fingerprint`, :mod:`._memory`, :mod:`._seeds`, :mod:`._lazy` (public names loaded at first use),
:mod:`._env` (on/off environment switches), :mod:`._platform` (the processor, recorded beside results),
:mod:`._devices` (the check of a device a user names),
:mod:`._warnings` (warnings attributed to the user's line).
"""
__version__ = "0.1.0"
