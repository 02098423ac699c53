"""``commands._preflight``: the checks a command runs before any work, on the path it will write."""
import os
from pathlib import Path

import pytest

from deepsphere_gen.commands._preflight import check_output_file, check_step_paths, check_writable_dir


def test_output_file_checks_the_path_the_command_writes(tmp_path, monkeypatch):
    """A path is checked as given, not ~-expanded: the commands write ``args.json`` as given, so a
    check of ``$HOME/...`` would have created one folder and let the write go to another."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert check_output_file("~/sub/r.json", "--json") == Path("~/sub/r.json")
    assert (tmp_path / "~" / "sub").is_dir() and not (tmp_path / "home").exists()
    (tmp_path / "~" / "sub" / "r.json").write_text("{}")
    assert check_output_file("~/sub/r.json", "--json").is_file()  # an existing file is fine
    with pytest.raises(ValueError, match=r"--json .*sub is a folder, not a file"):
        check_output_file("~/sub", "--json")
    with pytest.raises(ValueError, match="unsupported figure format 'txt'"):
        check_output_file("p.txt", "--plot", figure=True)
    assert check_output_file("plot", "--plot", figure=True) == Path("plot.png")  # what matplotlib writes


def test_writable_dir_refuses_a_file_and_a_read_only_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="--out-dir .*f is a file, not a folder"):
        check_writable_dir(tmp_path / "f", "--out-dir")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores the mode
            pytest.skip("running as root: a read-only folder is still writable")
        with pytest.raises(ValueError, match="is not a writable folder"):
            check_writable_dir(ro / "sub", "--out-dir")
    finally:
        ro.chmod(0o700)


def test_step_paths_check_what_each_step_writes_in_order(tmp_path):
    """massmaps' and cosmo's first checks (one function since both wrote them out): the device first, then
    --data-dir, --out-dir except for generate, --json only for evaluate and run (and only when given)."""
    afile, folder = tmp_path / "f", tmp_path / "d"
    afile.write_text("x")
    folder.mkdir()
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        check_step_paths("gpu", afile, afile, "run", folder)
    with pytest.raises(ValueError, match="--data-dir .* is a file"):
        check_step_paths("cpu", afile, afile, "run", folder)
    check_step_paths("cpu", tmp_path / "data", afile, "generate", folder)  # generate writes no outputs
    with pytest.raises(ValueError, match="--out-dir .* is a file"):
        check_step_paths("cpu", tmp_path / "data", afile, "train", folder)
    check_step_paths("cpu", tmp_path / "data", tmp_path / "out", "train", folder)  # train writes no JSON
    check_step_paths("cpu", tmp_path / "data", tmp_path / "out", "evaluate", None)
    for step in ("evaluate", "run"):
        with pytest.raises(ValueError, match="--json .* is a folder, not a file"):
            check_step_paths("cpu", tmp_path / "data", tmp_path / "out", step, folder)
    assert (tmp_path / "data").is_dir() and (tmp_path / "out").is_dir()


def test_both_commands_size_their_outputs_by_one_formula(monkeypatch):
    """massmaps and cosmo size a run's checkpoints, JSON and figures by ``network_output_bytes`` (the formula was
    written out in both): 16 MiB, plus per network 1 MiB and 256 bytes per graph input pixel."""
    from deepsphere_gen.commands import _massmaps_checks, _preflight, cosmo
    from deepsphere_gen.experiments.cosmo import CosmoExperimentConfig
    from deepsphere_gen.experiments.massmaps import ExperimentConfig

    assert _preflight.network_output_bytes([(2, 1000), (3, 0)]) == 2**24 + 2 * (2**20 + 256 * 1000) + 3 * 2**20
    assert _preflight.network_output_bytes([]) == 2**24
    seen = []
    monkeypatch.setattr(_preflight, "network_output_bytes", lambda networks: seen.append(list(networks)) or -1)
    assert cosmo._output_bytes(CosmoExperimentConfig()) == -1
    assert _massmaps_checks._output_bytes(ExperimentConfig()) == -1
    assert len(seen) == 2 and all(n >= 0 and p >= 0 for pairs in seen for n, p in pairs)
    assert any(p > 0 for _, p in seen[0]) and any(p == 0 and n > 0 for n, p in seen[0])  # graph members, MLPs
