"""Training loop: determinism, atomic resumable checkpoints, evaluation, torchrun DDP."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepsphere_gen.training import (
    CheckpointError,
    CheckpointMismatch,
    TrainConfig,
    TrainingInterrupted,
    batch_outputs,
    cross_entropy,
    distributed_context,
    evaluate,
    fit,
    learning_rate,
    load_checkpoint,
    load_model_state,
    recalibrate_batchnorm,
    save_checkpoint,
    trained_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]




def _data(n=48, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, 1, generator=g) + 0.8 * y[:, None, None]
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 2))


def _bn_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.ReLU(),
                         nn.Linear(8, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


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


@pytest.mark.parametrize("schedule", [{}, {"lr_schedule": "cosine", "warmup": 0.2}])
@pytest.mark.parametrize("make_model", [_model, lambda seed=0: _bn_model(seed)])
def test_resume_equals_uninterrupted(tmp_path, schedule, make_model):
    full = fit(m_full := make_model(), _data(), _cfg(**schedule), val_set=_data(seed=1), log=None)
    ckpt = tmp_path / "run.pt"

    def interrupt(line):
        if "epoch 2/4" in line:
            raise KeyboardInterrupt  # killed right after epoch 2 was checkpointed and reported

    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), _data(), _cfg(checkpoint=ckpt, **schedule), val_set=_data(seed=1), log=interrupt)
    assert load_checkpoint(ckpt)["epoch"] == 2
    lines = []
    resumed = fit(m_res := make_model(seed=5), _data(), _cfg(checkpoint=ckpt, **schedule), val_set=_data(seed=1),
                  log=lines.append)
    assert any("resumed" in s for s in lines)
    assert torch.equal(_params(m_full), _params(m_res))  # dropout RNG, data order and Adam state restored
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in full]
    assert [r["val_accuracy"] for r in resumed] == [r["val_accuracy"] for r in full]
    assert load_checkpoint(ckpt)["epoch"] == 4
    # a finished run is not trained further
    again = fit(m_again := make_model(seed=7), _data(), _cfg(checkpoint=ckpt, **schedule), log=None)
    assert len(again) == 4 and torch.equal(_params(m_again), _params(m_full))


def test_resume_with_other_settings_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    fit(_model(), _data(), _cfg(epochs=1, checkpoint=ckpt), log=None)
    with pytest.raises(ValueError, match="different settings.*lr"):
        fit(_model(), _data(), _cfg(lr=0.5, checkpoint=ckpt), log=None)
    fit(_model(), _data(), _cfg(epochs=1, lr=0.5, checkpoint=ckpt, resume=False), log=None)
    assert load_checkpoint(ckpt)["config"]["lr"] == 0.5
    # a cosine schedule is defined by the total number of epochs: another total is refused
    fit(_model(), _data(), _cfg(epochs=1, lr_schedule="cosine", checkpoint=ckpt, resume=False), log=None)
    with pytest.raises(ValueError, match="different settings.*epochs"):
        fit(_model(), _data(), _cfg(epochs=3, lr_schedule="cosine", checkpoint=ckpt), log=None)


def test_check_settings_names_each_differing_field():
    """check_settings (used by fit's resume and by the cosmo evaluation of checkpoints without a
    fingerprint) names each differing field with both values; epochs count only under a schedule;
    fields the checkpoint lacks are skipped unless absent_differs; ignored fields are not compared."""
    from deepsphere_gen.training import check_settings

    _plain = vars  # as fit stores a TrainConfig: plain values

    config = _cfg(lr_schedule="cosine", keep_best="val_loss", warmup=0.1)
    state = {"config": _plain(config)}
    check_settings(state, config, "run.pt")
    for key, value in {"batch_size": 3, "lr": 0.5, "weight_decay": 0.1, "seed": 5, "lr_schedule": "constant",
                       "warmup": 0.0, "keep_best": None, "epochs": 7}.items():
        other = {"config": {**_plain(config), key: value}}
        with pytest.raises(CheckpointMismatch, match=rf"run.pt was written with different settings \({key}: "
                                                     rf"\[{value!r}\] vs \[{getattr(config, key)!r}\]\); remedy$"):
            check_settings(other, config, "run.pt", "remedy")
        check_settings(other, config, "run.pt", ignore=(key,))
        lacking = {"config": {k: v for k, v in _plain(config).items() if k != key}}
        check_settings(lacking, config, "run.pt")
        with pytest.raises(CheckpointMismatch, match=rf"\({key}: \[None\]"):
            check_settings(lacking, config, "run.pt", absent_differs=True)
    constant = _cfg()
    check_settings({"config": {**_plain(constant), "epochs": 7}}, constant, "run.pt")  # constant lr: any length
    for key in ("device", "desc", "progress", "num_workers"):  # not settings of the training itself
        check_settings({"config": {**_plain(config), key: "x"}}, config, "run.pt")


def _bn_inputs(model, x):
    """Input of every BatchNorm of ``model`` (eval mode, i.e. with the running statistics)."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append(a[0])) for m in model.modules()
             if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


def test_recalibrate_batchnorm_uses_the_model_device(monkeypatch):
    """Without a context the batches go to the model's device, not to the default CUDA one."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    assert recalibrate_batchnorm(_bn_model(), _data(n=6), batch_size=3) == 2


def test_recalibrate_batchnorm_population_statistics():
    data = _data(n=23)  # batches 5, 5, 5, 5, 3: statistics weighted by count, not by batch
    model = _bn_model()
    model.train()
    model[3].train(False)  # a mixed mode that must be restored
    modes = [m.training for m in model.modules()]
    assert recalibrate_batchnorm(model, data, batch_size=5) == 2
    assert [m.training for m in model.modules()] == modes
    assert model[2].momentum == 0.1  # momentum restored
    x = data.tensors[0]
    h = nn.Flatten()(x) @ model[1].weight.T + model[1].bias  # input of the first BN: exact
    torch.testing.assert_close(model[2].running_mean, h.mean(0))
    torch.testing.assert_close(model[2].running_var, h.var(0, unbiased=True))
    # second BN: its input was normalised with batch statistics, as in training: close to the
    # population statistics of its input in eval mode
    h2 = _bn_inputs(model, x)[1]
    torch.testing.assert_close(model[6].running_mean, h2.mean(0), atol=0.1, rtol=0.1)
    torch.testing.assert_close(model[6].running_var, h2.var(0), atol=0.1, rtol=0.2)
    # nothing to do without BatchNorm; pixel BatchNorm of (batch, pixels, channels) maps
    assert recalibrate_batchnorm(_model(), data) == 0
    from deepsphere_gen.models.deepsphere import _PixelBatchNorm

    bn = _PixelBatchNorm(3)
    maps = torch.randn(7, 11, 3) * torch.tensor([1.0, 2.0, 3.0]) + 5
    recalibrate_batchnorm(bn, TensorDataset(maps, torch.zeros(7, dtype=torch.long)), batch_size=4)
    torch.testing.assert_close(bn.running_mean, maps.reshape(-1, 3).mean(0))
    torch.testing.assert_close(bn.running_var, maps.reshape(-1, 3).var(0))


def test_fit_recalibrates_lagging_statistics():
    """Few steps at a high learning rate: the running averages lag behind the weights; after
    fit they are the statistics of the final weights (and the eval-mode model is usable)."""
    data = _data(n=32)
    for recal in (False, True):
        model = _bn_model()
        fit(model, data, _cfg(epochs=2, lr=0.05, recalibrate_bn=recal), log=None)
        h = nn.Flatten()(data.tensors[0]) @ model[1].weight.T + model[1].bias
        err = float((model[2].running_mean - h.mean(0)).abs().max().detach())
        if recal:
            assert err < 1e-5
        else:
            assert err > 1e-2  # the bug: stale statistics
    sub = fit(m := _bn_model(), data, _cfg(epochs=1, recalibrate_samples=8), log=None)
    assert len(sub) == 1 and torch.isfinite(m[2].running_var).all()


def test_learning_rate_schedules():
    const = TrainConfig(lr=0.1)
    assert [learning_rate(const, s, 10) for s in range(10)] == [0.1] * 10
    cos = TrainConfig(lr=0.1, lr_schedule="cosine", warmup=0.2)
    lrs = [learning_rate(cos, s, 10) for s in range(10)]
    assert lrs[:2] == pytest.approx([0.05, 0.1])  # linear warm-up over 2 steps
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))  # then non-increasing
    assert lrs[2] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi * 7 / 8)))
    # the docstring's numbers: the decay reaches 0 one step after the last (step T), not at the last step
    pinned = TrainConfig(lr=1.0, lr_schedule="cosine", warmup=0.5)
    assert [learning_rate(pinned, s, 4) for s in range(5)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0], abs=1e-15)
    # fit applies it step by step
    model = _model()
    opt_lrs = []
    orig = torch.optim.AdamW.step

    def spy(self, *a, **k):
        opt_lrs.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.AdamW.step = spy
    try:
        fit(model, _data(n=16), _cfg(epochs=2, lr=0.1, lr_schedule="cosine", warmup=0.25), log=None)
    finally:
        torch.optim.AdamW.step = orig
    cfg = TrainConfig(lr=0.1, lr_schedule="cosine", warmup=0.25)
    assert opt_lrs == pytest.approx([learning_rate(cfg, s, 4) for s in range(4)])


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
    with pytest.raises(CheckpointError, match="holds objects other than tensors") as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)  # never relay torch's advice
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("content, match", [
    (b"epoch 3\nthis is a text file\n", "is not a PyTorch checkpoint"),
    (b"", "is an empty file"),
    ("truncated", "is damaged or truncated"),
    ("list", "holds a list, not a dict"),
])
def test_bad_checkpoint_files_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content == "truncated":
        save_checkpoint(path, {"model": _model().state_dict(), "epoch": 1})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "list":
        torch.save([1, 2], path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg and "weights_only" not in msg


@pytest.mark.parametrize("location", ["cuda", "gpu", "cuda:3"])
def test_load_checkpoint_to_a_device_this_machine_lacks_names_the_device(tmp_path, monkeypatch, location):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same case on any machine
    path = save_checkpoint(tmp_path / "c.pt", {"model": _model().state_dict(), "epoch": 1})
    with pytest.raises(ValueError, match=f"^map_location: .*device {location!r}.*; valid devices here: cpu$") as err:
        load_checkpoint(path, map_location=location)
    assert not isinstance(err.value, CheckpointError)  # the file is fine (was: "checkpoint ... is damaged")


def test_load_model_state_names_the_problem(tmp_path):
    path = tmp_path / "c.pt"
    with pytest.raises(CheckpointError, match="empty state dict"):
        load_model_state(_model(), {"model": {}}, path)
    with pytest.raises(CheckpointError, match="no model weights"):
        load_model_state(_model(), {"weights": 1}, path)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(6, 9), nn.Dropout(0.3), nn.ReLU(), nn.Linear(9, 2))
    with pytest.raises(CheckpointError, match=r"'1.weight' is \(9, 6\) in the file, \(8, 6\) in the network"):
        load_model_state(_model(), {"model": wide.state_dict()}, path)
    with pytest.raises(CheckpointError, match="2 of 16 entries missing \\(first: .8.weight.\\)"):
        load_model_state(_bn_model(), {"model": {k: v for k, v in _bn_model().state_dict().items()
                                                 if not k.startswith("8.")}}, path)
    m = load_model_state(_model(seed=3), {"model": _model(seed=4).state_dict()}, path)
    assert torch.equal(_params(m), _params(_model(seed=4)))
    # fit refuses a checkpoint file that is not a training checkpoint
    save_checkpoint(path, {"model": _model().state_dict()})
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        fit(_model(), _data(), _cfg(checkpoint=path), log=None)


def test_fingerprint_mismatch_is_refused_and_restart_overwrites(tmp_path):
    ckpt = tmp_path / "run.pt"
    meta_a = {"fingerprint": "aaa", "fields": {"data": {"nside": 8, "n_maps": 8}, "train": {"epochs": 1}}}
    meta_b = {"fingerprint": "bbb", "fields": {"data": {"nside": 16, "n_maps": 8}, "train": {"epochs": 1}}}
    fit(_model(), _data(), _cfg(epochs=1, checkpoint=ckpt), log=None, meta=meta_a)
    assert load_checkpoint(ckpt)["meta"] == meta_a
    with pytest.raises(CheckpointMismatch, match=r"another run .*differing: data\.nside.*--restart"):
        fit(_model(), _data(), _cfg(epochs=2, checkpoint=ckpt), log=None, meta=meta_b)
    assert load_checkpoint(ckpt)["meta"] == meta_a  # untouched
    lines = []
    fit(_model(), _data(), _cfg(epochs=1, checkpoint=ckpt, resume=False), log=lines.append, meta=meta_b)
    assert load_checkpoint(ckpt)["meta"] == meta_b and not any("resumed" in s for s in lines)
    fit(_model(), _data(), _cfg(epochs=2, checkpoint=ckpt), log=lines.append, meta=meta_b)  # same fingerprint
    assert any("resumed" in s for s in lines) and load_checkpoint(ckpt)["epoch"] == 2


def test_interrupt_names_the_last_saved_epoch(tmp_path):
    def interrupt(line):
        if "epoch 2/4" in line:
            raise KeyboardInterrupt  # the line of epoch 2 comes after its checkpoint

    with pytest.raises(TrainingInterrupted) as err:
        fit(_model(), _data(), _cfg(checkpoint=tmp_path / "c.pt", desc="fcn"), log=interrupt)
    assert (err.value.epoch, err.value.epochs, err.value.desc) == (2, 4, "fcn")
    assert isinstance(err.value, KeyboardInterrupt) and load_checkpoint(tmp_path / "c.pt")["epoch"] == 2
    step = torch.optim.AdamW.step  # an interrupt inside the steps of epoch 3: the last saved epoch is still 2

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    torch.optim.AdamW.step = boom
    try:
        with pytest.raises(TrainingInterrupted) as err:
            fit(_model(), _data(), _cfg(checkpoint=tmp_path / "c.pt", desc="fcn"), log=None)
    finally:
        torch.optim.AdamW.step = step
    assert err.value.epoch == 2


def test_interrupt_after_the_checkpoint_was_replaced(tmp_path, monkeypatch):
    """Ctrl-C after epoch 2's checkpoint replaced the file but before fit noted it (e.g. during the
    directory fsync): the message names epoch 2, the epoch the file holds; during the write: epoch 1."""
    import deepsphere_gen.training.loop as loop  # where fit looks save_checkpoint up

    save = loop.save_checkpoint

    def save_then_interrupt(path, state):
        save(path, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    with pytest.raises(TrainingInterrupted) as err:
        fit(_model(), _data(), _cfg(checkpoint=tmp_path / "c.pt", desc="fcn"), log=None)
    assert err.value.epoch == 2 == load_checkpoint(tmp_path / "c.pt")["epoch"]

    def interrupt_before_replacing(path, state):
        if state["epoch"] == 2:
            raise KeyboardInterrupt
        save(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", interrupt_before_replacing)
    with pytest.raises(TrainingInterrupted) as err:
        fit(_model(), _data(), _cfg(checkpoint=tmp_path / "d.pt", desc="fcn"), log=None)
    assert err.value.epoch == 1 == load_checkpoint(tmp_path / "d.pt")["epoch"]


def test_evaluate_counts():
    data = _data(n=10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))  # always class 0
    res = evaluate(model, data, batch_size=3, return_predictions=True)
    assert res["n"] == 10 and res["accuracy"] == pytest.approx(0.5) and res["correct"] == 5
    assert res["loss"] == pytest.approx(float(nn.functional.cross_entropy(torch.tensor([[1.0, 0.0]] * 10), data.tensors[1])))
    assert (res["predictions"] == 0).all()


class _CountCalls(torch.overrides.TorchFunctionMode):
    """Counts the tensor functions called by name (argmax, cpu, ...) while active."""

    def __init__(self):
        super().__init__()
        self.calls = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        self.calls[name] = self.calls.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def test_evaluate_takes_one_argmax_per_batch_and_copies_predictions_only_when_asked():
    """The per-pixel argmax was taken twice per batch and copied to the CPU even when no predictions were
    asked for."""
    data, model = _segmentation()  # 12 maps: batches of 5, 5, 2
    for return_predictions, copies in ((False, 0), (True, 3)):
        with _CountCalls() as mode:
            res = evaluate(model, data, batch_size=5, return_predictions=return_predictions)
        assert mode.calls.get("argmax") == 3 and mode.calls.get("cpu", 0) == copies, mode.calls
        assert ("predictions" in res) == return_predictions


def _multi_output(n=10, outputs=4, seed=0):
    """A regression set with 4 outputs per sample, and a fixed linear model for it."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 6, 1, generator=g, dtype=torch.float64), torch.randn(n, outputs, generator=g, dtype=torch.float64)
    torch.manual_seed(seed)
    return TensorDataset(x, y), nn.Sequential(nn.Flatten(), nn.Linear(6, outputs)).double()


def test_evaluate_loss_is_the_mean_loss_of_multi_output_and_custom_losses():
    """The validation loss is on the training loss's scale: mse_loss of 4 outputs was reported as the sum over
    the outputs (4x the mean MSE, from reduction="sum"), and a loss without a ``reduction`` keyword failed."""
    data, model = _multi_output()
    with torch.no_grad():
        out = model(data.tensors[0]).numpy()
    mean_mse = float(((out - data.tensors[1].numpy()) ** 2).mean())  # by hand: over samples and outputs
    for loss_fn in (nn.functional.mse_loss, lambda o, y: ((o - y) ** 2).mean()):
        res = evaluate(model, data, batch_size=3, loss_fn=loss_fn)  # batches of 3, 3, 3, 1
        assert res["loss"] == pytest.approx(mean_mse, rel=1e-12) and res["n"] == 10
    # per-pixel outputs (B, npix, channels): the mean over pixels too, not their sum
    seg = nn.Conv1d(6, 6, 1).double()
    x = torch.randn(5, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        expected = float(((seg(x) - x) ** 2).mean())
    assert evaluate(seg, TensorDataset(x, x), batch_size=2, loss_fn=nn.functional.mse_loss)["loss"] == \
        pytest.approx(expected, rel=1e-12)


class _Frozen(nn.Module):
    """A fixed linear map plus a parameter that has no effect (zero gradient, no weight decay): training
    leaves the outputs unchanged, so the training loss of an epoch equals the loss of the same set."""

    def __init__(self, net):
        super().__init__()
        self.net, self.unused = net.requires_grad_(False), nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return self.net(x) + 0 * self.unused


def test_train_and_validation_loss_agree_on_the_same_set():
    data, model = _multi_output(n=12)
    loss_fn = lambda o, y: ((o - y) ** 2).mean()  # noqa: E731  (no reduction keyword)
    hist = fit(_Frozen(model), data, _cfg(epochs=2, batch_size=4), val_set=data, loss_fn=loss_fn, log=None)
    with torch.no_grad():
        direct = float(nn.functional.mse_loss(model(data.tensors[0]), data.tensors[1]))
    for rec in hist:
        assert rec["train_loss"] == pytest.approx(direct, rel=1e-12)
        assert rec["val_loss"] == pytest.approx(direct, rel=1e-12)  # was 4x: the sum over the 4 outputs


def test_accuracy_is_none_unless_classification():
    data, model = _multi_output()
    assert evaluate(model, data, loss_fn=nn.functional.mse_loss)["accuracy"] is None  # was 0.0
    hist = fit(_line(), _toward(), _reg_cfg(epochs=2), val_set=_toward(0.35), loss_fn=nn.functional.mse_loss, log=None)
    assert all(r["train_accuracy"] is None and r["val_accuracy"] is None for r in hist)
    assert '"val_accuracy": null' in json.dumps(hist[0])
    cls = fit(_model(), _data(), _cfg(epochs=1), val_set=_data(seed=1), log=None)[0]
    assert 0 <= cls["train_accuracy"] <= 1 and 0 <= cls["val_accuracy"] <= 1


def test_default_loss_on_class_outputs_is_torchs_cross_entropy_bit_for_bit():
    """The recorded experiments train (B, classes) classifiers with fit's default loss: the channels-last
    default must leave every step, weight and record as torch's cross_entropy made them."""
    out, y = torch.randn(7, 3, dtype=torch.float64), torch.randint(0, 3, (7,))
    assert torch.equal(cross_entropy(out, y), nn.functional.cross_entropy(out, y))
    h1 = fit(m1 := _model(), _data(), _cfg(epochs=2), val_set=_data(seed=1), log=None)
    h2 = fit(m2 := _model(), _data(), _cfg(epochs=2), val_set=_data(seed=1), loss_fn=nn.functional.cross_entropy, log=None)
    assert torch.equal(_params(m1), _params(m2))
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in h1] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in h2]
    assert evaluate(m1, _data(seed=2)) == evaluate(m1, _data(seed=2), loss_fn=nn.functional.cross_entropy)


def _segmentation(n=12, npix=10, classes=3, seed=0):
    """Per-pixel labels (n, npix) for maps (n, npix, 2), and a fixed per-pixel linear model (channels-last)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, npix, 2, generator=g, dtype=torch.float64)
    torch.manual_seed(seed)
    return TensorDataset(x, torch.randint(0, classes, (n, npix), generator=g)), nn.Linear(2, classes).double()


def test_segmentation_outputs_channels_last_train_with_the_default_loss_and_report_pixel_accuracy():
    """SphericalUNet's (B, npix, classes) outputs with (B, npix) labels: fit's default loss failed inside torch
    (it wants the classes on axis 1) and the accuracies were None."""
    data, model = _segmentation()
    x, y = data.tensors
    with torch.no_grad():
        out = model(x)
    logp = out.numpy() - np.log(np.exp(out.numpy()).sum(-1, keepdims=True))  # by hand: mean -log p over pixels
    nll = -np.take_along_axis(logp, y.numpy()[..., None], -1).mean()
    assert float(cross_entropy(out, y)) == pytest.approx(nll, rel=1e-12)
    soft = nn.functional.one_hot(y, 3).double()  # class probabilities of the outputs' shape
    assert float(cross_entropy(out, soft)) == pytest.approx(nll, rel=1e-12)
    pixel_acc = float((out.argmax(-1) == y).double().mean())
    res = evaluate(model, data, batch_size=5, return_predictions=True)
    assert res["loss"] == pytest.approx(nll, rel=1e-12) and res["accuracy"] == pytest.approx(pixel_acc, rel=1e-12)
    assert res["predictions"].shape == (12, 10)
    assert res["correct"] == pytest.approx(12 * pixel_acc, rel=1e-12)  # the sum of the maps' pixel accuracies
    hist = fit(_Frozen(model), data, _cfg(epochs=1, batch_size=4), val_set=data, log=None)  # outputs do not move
    assert hist[0]["train_loss"] == pytest.approx(nll, rel=1e-12)
    assert hist[0]["train_accuracy"] == pytest.approx(pixel_acc, rel=1e-12) == hist[0]["val_accuracy"]


@pytest.mark.parametrize("out_shape,y_shape", [((8, 10, 3), (8,)), ((8, 3, 10), (8, 10)), ((8,), (8,))])
def test_default_loss_refuses_outputs_that_do_not_fit_the_targets_in_one_line(out_shape, y_shape):
    y = torch.zeros(y_shape, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"^cross_entropy: outputs \({', '.join(map(str, out_shape))},?\) do not fit "
                                         rf"torch.int64 targets \({', '.join(map(str, y_shape))},?\): classes go on the "
                                         r"LAST axis \(channels-last\)[^\n]*pass fit / evaluate a loss_fn$"):
        cross_entropy(torch.zeros(out_shape), y)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 30), nn.Unflatten(1, (3, 10)))  # channels-first per-pixel logits
    with pytest.raises(ValueError, match=r"^cross_entropy: outputs \(8, 3, 10\) do not fit torch.int64 targets \(8, 10\)"):
        fit(model, TensorDataset(torch.randn(16, 6, 1), torch.zeros(16, 10, dtype=torch.long)), _cfg(epochs=1), log=None)


def test_keep_best_accuracy_of_a_regression_is_refused_before_training():
    lines, m = [], _line()
    with pytest.raises(ValueError, match=r"^keep_best='val_accuracy' needs a classification .* outputs \(1, 1\) "
                                         r"for torch.float32 targets \(1, 1\).*: use keep_best='val_loss'$"):
        fit(m, _toward(), _reg_cfg(keep_best="val_accuracy"), val_set=_toward(0.35), loss_fn=nn.functional.mse_loss,
            log=lines.append)  # was: trained, then "kept epoch 1 of 6 (val accuracy 0.0000)"
    assert lines == [] and float(m.bias.detach()) == 0.0  # nothing trained
    assert m.training  # the one forward pass that decided left the mode as it was


def test_batch_outputs_in_dataset_order_in_eval_mode():
    data = _data(n=10)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 2))
    model.train()
    outputs = list(batch_outputs(model, data, batch_size=4))
    assert model.training  # restored once the iteration ended
    assert [len(y) for _, y in outputs] == [4, 4, 2]  # batches of batch_size, dataset order
    assert torch.equal(torch.cat([y for _, y in outputs]), data.tensors[1])
    model.eval()
    with torch.no_grad():
        expected = model(data.tensors[0])  # eval mode: dropout off, so outputs are deterministic
    assert torch.equal(torch.cat([o for o, _ in outputs]), expected)
    model.train()

    class Fails(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    failing = Fails().train()
    with pytest.raises(RuntimeError, match="boom"):
        list(batch_outputs(failing, data))
    assert failing.training  # the mode is restored after an error too
    assert list(batch_outputs(model, torch.utils.data.TensorDataset(torch.zeros(0, 6), torch.zeros(0)))) == []


def test_bad_settings():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(warmup=1.0)
    with pytest.raises(ValueError, match="recalibrate_samples"):
        TrainConfig(recalibrate_samples=0)
    with pytest.raises(ValueError, match="empty"):
        recalibrate_batchnorm(_bn_model(), TensorDataset(torch.zeros(0, 6, 1), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="empty"):
        fit(_model(), TensorDataset(torch.zeros(0, 6, 1), torch.zeros(0, dtype=torch.long)), _cfg(), log=None)
    bad = TensorDataset(torch.full((8, 6, 1), float("nan")), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="non-finite"):
        fit(_model(), bad, _cfg(), log=None)


@pytest.mark.parametrize("device, match", [
    ("gpu", "^unknown device 'gpu'; valid devices here: cpu$"),
    ("cuda", "^device 'cuda' requested but CUDA is not available on this machine; valid devices here: cpu$"),
    ("cuda:3", "^device 'cuda:3' requested but CUDA is not available"),
])
def test_train_config_refuses_a_device_this_machine_lacks(monkeypatch, device, match):
    """The commands' device check, when the settings are made (was: torch's list of device types from fit,
    "Expected one of cpu, cuda, ipu, ..."); CUDA is hidden, so the case is the same on any machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=match):
        TrainConfig(device=device)
    assert TrainConfig(device="cpu").device == "cpu" and TrainConfig().device is None


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


# ------------------------------------------------------------------ keep_best


def _toward(target=1.0, n=16):
    """A regression set: constant input, constant target (the model drifts monotonically toward it)."""
    return TensorDataset(torch.ones(n, 1), torch.full((n, 1), target))


def _line(seed=0):
    torch.manual_seed(seed)
    m = nn.Linear(1, 1)
    with torch.no_grad():
        m.weight.zero_()
        m.bias.zero_()
    return m


def _reg_cfg(**kw):
    return _cfg(**{"epochs": 6, "lr": 0.03, **kw})


def test_keep_best_returns_the_best_epoch_not_the_last(tmp_path):
    # training pulls the output from 0 toward 1; the validation target 0.35 is passed on the way:
    # the validation loss falls, then rises, so the last epoch is worse than an earlier one
    ckpt = tmp_path / "best.pt"
    mse = nn.functional.mse_loss
    hist = fit(m := _line(), _toward(), _reg_cfg(keep_best="val_loss", checkpoint=ckpt), val_set=_toward(0.35),
               loss_fn=mse, log=None)
    val = [r["val_loss"] for r in hist]
    best = min(range(len(val)), key=val.__getitem__) + 1
    assert 1 < best < len(val) and val[-1] > val[best - 1]  # the scenario the option is for
    assert [r["best_epoch"] for r in hist][-1] == best
    fit(m_short := _line(), _toward(), _reg_cfg(epochs=best), val_set=_toward(0.35), loss_fn=mse, log=None)
    assert torch.equal(_params(m), _params(m_short))  # the best epoch's weights, exactly
    fit(m_last := _line(), _toward(), _reg_cfg(), val_set=_toward(0.35), loss_fn=mse, log=None)
    assert not torch.equal(_params(m), _params(m_last))  # default: the last epoch's weights
    state = load_checkpoint(ckpt)
    assert state["best"]["epoch"] == best and state["best"]["value"] == pytest.approx(val[best - 1])
    assert torch.equal(trained_weights(state)["bias"], m.bias.detach())
    assert torch.equal(state["model"]["bias"], m_last.bias.detach())  # last weights kept for resuming
    assert trained_weights({"model": {"x": 1}}) == {"x": 1}  # no keep_best: the last weights


def test_keep_best_passes_over_a_nan_validation_epoch():
    # the first epoch's validation loss is NaN (e.g. a diverged first step): a NaN is never the
    # best, so the best epoch moves to the first finite one (a plain "<" would keep epoch 1 forever)
    mse, calls = nn.functional.mse_loss, []

    def loss_fn(out, y, **kw):
        if not torch.is_grad_enabled():  # evaluate(): 2 batches of 8 per epoch
            calls.append(1)
            if len(calls) <= 2:
                return torch.tensor(math.nan)
        return mse(out, y, **kw)

    hist = fit(_line(), _toward(), _reg_cfg(keep_best="val_loss"), val_set=_toward(0.35), loss_fn=loss_fn, log=None)
    assert math.isnan(hist[0]["val_loss"]) and hist[0]["best_epoch"] == 1  # nothing better yet
    finite = [r["val_loss"] for r in hist[1:]]
    assert hist[-1]["best_epoch"] == 2 + min(range(len(finite)), key=finite.__getitem__)


def test_keep_best_survives_resume(tmp_path):
    mse = nn.functional.mse_loss
    cfg = dict(keep_best="val_loss", lr_schedule="cosine", warmup=0.1)
    full = fit(m_full := _line(), _toward(), _reg_cfg(**cfg), val_set=_toward(0.35), loss_fn=mse, log=None)
    assert full[-1]["best_epoch"] <= 4  # best epoch before the interruption: only the checkpoint knows it
    ckpt = tmp_path / "run.pt"

    def interrupt(line):
        if "epoch 4/6" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(_line(), _toward(), _reg_cfg(checkpoint=ckpt, **cfg), val_set=_toward(0.35), loss_fn=mse, log=interrupt)
    resumed = fit(m_res := _line(), _toward(), _reg_cfg(checkpoint=ckpt, **cfg), val_set=_toward(0.35), loss_fn=mse,
                  log=None)
    assert [r["best_epoch"] for r in resumed] == [r["best_epoch"] for r in full]
    assert torch.equal(_params(m_res), _params(m_full))
    # a finished run found again: the best weights, not the last
    fit(m_again := _line(seed=3), _toward(), _reg_cfg(checkpoint=ckpt, **cfg), val_set=_toward(0.35), loss_fn=mse,
        log=None)
    assert torch.equal(_params(m_again), _params(m_full))
    # a checkpoint written without keep_best cannot say which epoch was best: refused
    plain = tmp_path / "plain.pt"
    fit(_line(), _toward(), _reg_cfg(epochs=2, checkpoint=plain), val_set=_toward(0.35), loss_fn=mse, log=None)
    with pytest.raises(CheckpointMismatch, match="keep_best"):
        fit(_line(), _toward(), _reg_cfg(checkpoint=plain, **cfg), val_set=_toward(0.35), loss_fn=mse, log=None)


def test_keep_best_accuracy_for_classification():
    hist = fit(m := _model(), _data(), _cfg(epochs=6, lr=5e-2, keep_best="val_accuracy"), val_set=_data(n=24, seed=1),
               log=None)
    acc = [r["val_accuracy"] for r in hist]
    best = acc.index(max(acc)) + 1  # the earliest of ties
    assert hist[-1]["best_epoch"] == best
    fit(m_short := _model(), _data(), _cfg(epochs=best, lr=5e-2), val_set=_data(n=24, seed=1), log=None)
    assert torch.equal(_params(m), _params(m_short))


def test_keep_best_settings_are_checked():
    with pytest.raises(ValueError, match="keep_best"):
        _cfg(keep_best="accuracy")
    with pytest.raises(ValueError, match="validation set"):
        fit(_model(), _data(), _cfg(keep_best="val_loss"), log=None)


def test_log_lines_show_accuracy_only_for_classification():
    cls, reg = [], []
    fit(_model(), _data(), _cfg(epochs=1), val_set=_data(seed=1), log=cls.append)
    fit(_line(), _toward(), _reg_cfg(epochs=1, keep_best="val_loss"), val_set=_toward(0.35),
        loss_fn=nn.functional.mse_loss, log=reg.append)
    assert "train loss" in cls[0] and "train acc" in cls[0] and "val acc" in cls[0] and "val loss" in cls[0]
    assert "acc" not in reg[0] and "val loss" in reg[0] and "best epoch 1" in reg[0]
    assert "kept epoch 1" in reg[-1]
