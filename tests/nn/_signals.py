"""Random generalized signals shared by the layer tests."""
import torch

from deepsphere_gen.nn import GeneralizedSignal


def random_signal(L, tau, C=2, B=2, dtype=torch.float64, seed=0):
    """Fragments (B, C, 2l+1, tau(l)) of N(0, 1) values, drawn in float64 then cast."""
    g = torch.Generator().manual_seed(seed)
    return GeneralizedSignal([torch.randn(B, C, 2 * l + 1, tau(l), generator=g, dtype=torch.float64).to(dtype)
                              for l in range(L)])


def s2_signal(L=4, C=2, B=2, dtype=torch.float64, seed=0):
    """A signal on the sphere: tau_l = 1."""
    return random_signal(L, lambda l: 1, C, B, dtype, seed)


def so3_signal(L=4, C=2, B=2, dtype=torch.float64, seed=0):
    """A signal on SO(3): tau_l = 2l+1."""
    return random_signal(L, lambda l: 2 * l + 1, C, B, dtype, seed)
