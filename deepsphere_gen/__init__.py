"""deepsphere_gen: deep learning on the sphere with graph, harmonic and hybrid spherical CNNs.

Sub-packages (data flows downwards): ``sampling`` -> ``graph`` / ``harmonic`` -> ``nn``
-> ``models``; ``equivariance`` measures equivariance errors; ``datasets`` generates
data; ``cli`` is the ``deepsphere-gen`` command.
"""
__version__ = "0.1.0"
