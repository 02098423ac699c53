"""The processor description recorded beside timings and trained results."""
import torch

from deepsphere_gen._platform import cpu_description

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw amx_tile
processor\t: 1
model name\t: Another CPU
flags\t\t: fpu sse2
"""


def test_model_and_kernel_flags_of_the_first_processor(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    d = cpu_description(info)
    assert d["cpu_model"] == "Example CPU @ 2.00GHz"
    assert d["cpu_flags"] == ["avx2", "fma", "avx512f", "amx_tile"]  # in KERNEL_FLAGS order, others dropped
    assert d["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_without_cpuinfo_the_platform_names_the_processor(tmp_path):
    d = cpu_description(tmp_path / "missing")
    assert d["cpu_flags"] == [] and isinstance(d["cpu_model"], str) and d["cpu_model"]
