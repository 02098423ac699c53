"""Training loop: determinism, atomic resumable checkpoints, evaluation, torchrun DDP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepsphere_gen.training import (
    TrainConfig,
    distributed_context,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _data(n=48, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, 1, generator=g) + 0.8 * y[:, None, None]
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 2))


def _cfg(**kw):
    return TrainConfig(**{"epochs": 4, "batch_size": 8, "lr": 1e-2, "progress": False, **kw})


def _params(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_same_seed_same_run_and_learns():
    h1 = fit(m1 := _model(), _data(), _cfg(), log=None)
    h2 = fit(m2 := _model(), _data(), _cfg(), log=None)
    assert torch.equal(_params(m1), _params(m2))
    assert [r["step_losses"] for r in h1] == [r["step_losses"] for r in h2]
    assert len(h1) == 4 and len(h1[0]["step_losses"]) == 6  # 48 samples / batch 8
    assert h1[-1]["train_loss"] < h1[0]["train_loss"]
    h3 = fit(m3 := _model(), _data(), _cfg(seed=1), log=None)  # another data order: another run
    assert not torch.equal(_params(m1), _params(m3))
    assert h3[0]["step_losses"] != h1[0]["step_losses"]


def test_resume_equals_uninterrupted(tmp_path):
    full = fit(m_full := _model(), _data(), _cfg(), val_set=_data(seed=1), log=None)
    ckpt = tmp_path / "run.pt"
    fit(_model(), _data(), _cfg(epochs=2, checkpoint=ckpt), val_set=_data(seed=1), log=None)
    assert load_checkpoint(ckpt)["epoch"] == 2
    lines = []
    resumed = fit(m_res := _model(seed=5), _data(), _cfg(checkpoint=ckpt), val_set=_data(seed=1), log=lines.append)
    assert any("resumed" in s for s in lines)
    assert torch.equal(_params(m_full), _params(m_res))  # dropout RNG, data order and Adam state restored
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in full]
    assert [r["val_accuracy"] for r in resumed] == [r["val_accuracy"] for r in full]
    assert load_checkpoint(ckpt)["epoch"] == 4
    # a finished run is not trained further
    again = fit(m_again := _model(seed=7), _data(), _cfg(checkpoint=ckpt), log=None)
    assert len(again) == 4 and torch.equal(_params(m_again), _params(m_full))


def test_resume_with_other_settings_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    fit(_model(), _data(), _cfg(epochs=1, checkpoint=ckpt), log=None)
    with pytest.raises(ValueError, match="different settings.*lr"):
        fit(_model(), _data(), _cfg(lr=0.5, checkpoint=ckpt), log=None)
    fit(_model(), _data(), _cfg(epochs=1, lr=0.5, checkpoint=ckpt, resume=False), log=None)
    assert load_checkpoint(ckpt)["config"]["lr"] == 0.5


def test_checkpoint_atomic_and_weights_only(tmp_path):
    path = tmp_path / "sub" / "c.pt"
    save_checkpoint(path, {"w": torch.arange(3.0), "epoch": 2, "history": [{"a": 1.0}]})
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.arange(3.0))

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"w": torch.zeros(2), "bad": Boom()})
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(3.0))  # old file intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.pt"]  # no temporary left
    # arbitrary pickled objects are refused by weights_only loading
    torch.save({"obj": TrainConfig()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_evaluate_counts():
    data = _data(n=10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))  # always class 0
    res = evaluate(model, data, batch_size=3, return_predictions=True)
    assert res["n"] == 10 and res["accuracy"] == pytest.approx(0.5)
    assert res["loss"] == pytest.approx(float(nn.functional.cross_entropy(torch.tensor([[1.0, 0.0]] * 10), data.tensors[1])))
    assert (res["predictions"] == 0).all()


def test_bad_settings():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="empty"):
        fit(_model(), TensorDataset(torch.zeros(0, 6, 1), torch.zeros(0, dtype=torch.long)), _cfg(), log=None)
    bad = TensorDataset(torch.full((8, 6, 1), float("nan")), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="non-finite"):
        fit(_model(), bad, _cfg(), log=None)


def test_single_process_context():
    ctx = distributed_context("cpu")
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main) == (0, 1, False, True)
    assert ctx.device == torch.device("cpu")


@pytest.mark.slow
def test_torchrun_two_processes_match_single_process(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU) follows the single-process loss trajectory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "examples" / "ddp_check.py")
    single, ddp = tmp_path / "single.json", tmp_path / "ddp.json"
    subprocess.run([sys.executable, script, "--out", str(single)], check=True, env=env, cwd=tmp_path, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    script, "--out", str(ddp)], check=True, env=env, cwd=tmp_path, timeout=300)
    a, b = json.loads(single.read_text()), json.loads(ddp.read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    la = [s for h in a["history"] for s in h["step_losses"]]
    lb = [s for h in b["history"] for s in h["step_losses"]]
    assert len(la) == len(lb) == 12
    assert lb == pytest.approx(la, rel=1e-10)
    assert b["params"] == pytest.approx(a["params"], rel=1e-9, abs=1e-12)
    assert la[-1] < la[0]  # it trains
