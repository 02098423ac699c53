"""Experiments: the top layer, above the library (``sampling`` -> ``graph`` / ``harmonic`` ->
``nn`` -> ``models``); the ``deepsphere-gen`` commands call them, nothing in the library
imports them.

| module | experiment |
| --- | --- |
| :mod:`.massmaps` | DeepSphere's cosmology task: two cosmologies from convergence maps, networks vs baselines; a subpackage of one-job modules (settings importable without torch, models, data, symmetries, training, the SVM baselines and their patch features, parallel run, evaluation, outputs, classify; its ``__init__`` lists them) |
| :mod:`.cosmo` | (Omega_m, sigma_8, S8) on a survey footprint: DeepSphere regressor vs band-power MLPs; a subpackage, its ``__init__`` tables its modules (settings in :mod:`.cosmo.config`, importable without torch) |
| :mod:`.reporting` | 95 % Wilson and map-bootstrap intervals, paired margins, the tables and the figures of :mod:`.massmaps` (also used by :mod:`.cosmo`) |
| :mod:`.digits` | spherical digits: graph, harmonic, hybrid and planar networks |
| :mod:`.digits_config` | its settings (``DigitsConfig``, ``--quick``, model names), importable without torch |
| :mod:`.equivariance_sweep` | equivariance error of graph vs harmonic layers under random rotations |
| :mod:`.classic_table` | equivariance of the classic (Cohen, Esteves) layers vs the published table |
"""
