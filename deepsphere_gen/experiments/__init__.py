"""Experiments: the top layer, above the library (``sampling`` -> ``graph`` / ``harmonic`` ->
``nn`` -> ``models``); the ``deepsphere-gen`` commands call them, nothing in the library
imports them.

| module | experiment |
| --- | --- |
| :mod:`.massmaps` | DeepSphere's cosmology task: two cosmologies from convergence maps, networks vs baselines |
| :mod:`.massmaps_config` | its settings (methods, ``ExperimentConfig``, sky fractions), importable without torch |
| :mod:`.cosmo` | (Omega_m, sigma_8, S8) on a survey footprint: DeepSphere regressor vs band-power MLPs; a subpackage, its ``__init__`` tables its modules (settings in :mod:`.cosmo.config`, importable without torch) |
| :mod:`.baselines` | the non-CNN baselines of :mod:`.massmaps` (power spectrum, histogram, SVMs) |
| :mod:`.massmaps_features` | hand-crafted patch statistics (PSD, histogram, moments, peaks, Minkowski functionals) |
| :mod:`.reporting` | 95 % Wilson and map-bootstrap intervals, paired margins, the tables and the figures of :mod:`.massmaps` |
| :mod:`.digits` | spherical digits: graph, harmonic, hybrid and planar networks |
| :mod:`.digits_config` | its settings (``DigitsConfig``, ``--quick``, model names), importable without torch |
| :mod:`.equivariance_sweep` | equivariance error of graph vs harmonic layers under random rotations |
| :mod:`.classic_table` | equivariance of the classic (Cohen, Esteves) layers vs the published table |
"""
