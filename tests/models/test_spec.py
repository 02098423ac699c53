"""Model specs: JSON round trip, rebuilding, checkpoints that rebuild their model, errors."""
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsphere_gen.models import (
    DeepSphereClassifier,
    DeepSphereRegressor,
    HarmonicClassifier,
    HybridClassifier,
    ModelSpec,
    SphericalUNet,
    build_model,
    load_model,
    save_model,
)
from deepsphere_gen.models.spec import specified
from deepsphere_gen.sampling import GaussLegendreSampling


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


def _models(cache_dir):
    kw = dict(K=3, k=8, cache_dir=cache_dir)
    return {
        "classifier": lambda: DeepSphereClassifier(4, 2, channels=(3, 4), n_classes=3, head="stats",
                                                   stats=("mean", "max"), dtype=torch.float64, **kw),
        "regressor": lambda: DeepSphereRegressor(4, 1, channels=(3, 4), n_outputs=2, pool_levels=(1, 0),
                                                 pool="avg", indices=list(range(96)), **kw),
        "unet": lambda: SphericalUNet(4, 2, 3, channels=(3, 4), unpool="max", **kw),
        "hybrid": lambda: HybridClassifier(8, 1, 3, graph_channels=(3,), bandlimits=(4, 3), harmonic_channels=(3,),
                                           hidden=(8,), **kw),
        "harmonic": lambda: HarmonicClassifier(3, bandlimits=(4, 3), channels=(2, 3), hidden=(8,)),
    }


@pytest.mark.parametrize("name", ["classifier", "regressor", "unet", "hybrid", "harmonic"])
def test_spec_round_trips_and_rebuilds_the_same_architecture(name, cache_dir):
    model = _models(cache_dir)[name]()
    spec = model.spec
    text = spec.to_json()
    assert ModelSpec.from_json(text) == spec and ModelSpec.from_dict(json.loads(text)) == spec
    hash(spec)  # frozen all the way down
    rebuilt = build_model(text)
    assert type(rebuilt) is type(model) and rebuilt.spec == spec
    shapes = lambda m: {k: (tuple(v.shape), v.dtype) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(rebuilt) == shapes(model)


def test_spec_groups_the_encoder_and_head(cache_dir):
    d = _models(cache_dir)["classifier"]().spec.to_dict()
    assert d["model"] == "DeepSphereClassifier" and d["version"] == 1
    assert d["encoder"] == {"channels": [3, 4], "K": 3, "k": 8, "pool_levels": 1, "pool": "max",
                            "batch_norm": True, "laplacian": "combinatorial"}
    assert d["head"] == {"n_classes": 3, "head": "stats", "stats": ["mean", "max"], "fc_hidden": []}
    assert d["numerics"] == {"dtype": "float64"} and d["runtime"]["cache_dir"] == str(cache_dir)
    assert build_model(d).head.weight.dtype == torch.float64


@pytest.mark.parametrize("name", ["classifier", "hybrid"])
def test_checkpoint_rebuilds_its_model(name, cache_dir, tmp_path):
    torch.manual_seed(0)
    model = _models(cache_dir)[name]()
    x = torch.randn(3, model.npix, model.in_channels, dtype=next(model.parameters()).dtype)
    model.train()(x)  # move the batch-norm statistics away from their initial values
    model.eval()
    path = save_model(tmp_path / "net.pt", model, epoch=7)
    torch.manual_seed(1)  # a different initialisation: only the checkpoint can make them equal
    loaded = load_model(path)
    assert not loaded.training
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert torch.load(path, weights_only=True)["epoch"] == 7


def test_constructor_options_are_keyword_only(cache_dir):
    with pytest.raises(TypeError):
        DeepSphereClassifier(4, 1, (3, 4), cache_dir=cache_dir)
    with pytest.raises(TypeError):
        HybridClassifier(8, 1, 3, (3,))
    with pytest.raises(TypeError):
        HarmonicClassifier(3, (4, 3))


def test_errors(cache_dir, tmp_path):
    model = HarmonicClassifier(3, bandlimits=(4, 3), channels=(2, 3), sampling=GaussLegendreSampling(4))
    with pytest.raises(ValueError, match="sampling=.*no JSON form"):
        model.spec  # the model builds; only its spec is refused
    with pytest.raises(ValueError, match=r"no spec \(so no save_model\); save its weights with torch.save\(model.state_dict"):
        save_model(tmp_path / "h.pt", model)
    assert not (tmp_path / "h.pt").exists()
    d = _models(cache_dir)["unet"]().spec.to_dict()
    with pytest.raises(ValueError, match="unknown model"):
        build_model({**d, "model": "Nope"})
    with pytest.raises(ValueError, match="spec version"):
        build_model({**d, "version": 99})
    with pytest.raises(ValueError, match="no argument"):
        build_model(d, widths=3)
    with pytest.raises(ValueError, match="no checkpoint at"):
        load_model(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a model checkpoint"):
        load_model(tmp_path / "plain.pt")
    with pytest.raises(TypeError, match="each argument"):
        @specified({"a": ("x",)})
        class Bad(torch.nn.Module):
            def __init__(self, x, y):
                super().__init__()

    class Sub(DeepSphereRegressor):
        pass

    with pytest.raises(ValueError, match="not a @specified class"):
        Sub(4, 1, channels=(3,), K=3, k=8, cache_dir=cache_dir).spec


@pytest.mark.parametrize("content, match", [
    (b"epoch 3\nthis is a text file\n", "is not a PyTorch checkpoint"),
    (b"", "is an empty file"),
    ("pickle", "holds objects other than tensors"),
    ("npz", "is not a PyTorch checkpoint"),  # a zip, as torch.save's archives: was "damaged or truncated"
    ("zip", "is not a PyTorch checkpoint"),
    ("zip with mydata.pkl", "is not a PyTorch checkpoint"),  # not an archive's .../data.pkl: was "damaged"
    ("truncated", "is damaged or truncated"),
    ("no tensor data", r"is damaged \("),  # readable zip directory: not "or truncated"
])
def test_load_model_of_a_file_that_is_not_a_checkpoint_is_a_one_line_error(tmp_path, content, match):
    """The training checkpoints' reader: no KeyError / EOFError / unpickling traceback from torch."""
    path = tmp_path / "net.pt"
    if content == "pickle":
        torch.save({"spec": {}, "state_dict": {}, "obj": Path("x")}, path)
    elif content == "npz":
        path = tmp_path / "net.npz"
        np.savez(path, x=np.arange(3))
    elif content in ("zip", "zip with mydata.pkl"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("mydata.pkl" if content != "zip" else "notes.txt", "not a network")
    elif content in ("truncated", "no tensor data"):
        torch.save({"spec": {}, "state_dict": {"w": torch.zeros(3)}}, path)
        if content == "truncated":
            path.write_bytes(path.read_bytes()[:400])
        else:  # the pickle and the records, without the tensor's storage
            with zipfile.ZipFile(path) as archive:
                entries = {name: archive.read(name) for name in archive.namelist() if "/data/" not in name}
            with zipfile.ZipFile(path, "w") as archive:
                for name, data in entries.items():
                    archive.writestr(name, data)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as err:
        load_model(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg and "weights_only" not in msg


@pytest.mark.parametrize("location", ["cuda", "gpu", "cuda:3"])
def test_load_model_to_a_device_this_machine_lacks_names_the_device(cache_dir, tmp_path, monkeypatch, location):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same case on any machine
    path = save_model(tmp_path / "net.pt", _models(cache_dir)["harmonic"]())
    with pytest.raises(ValueError, match=f"^map_location: .*device {location!r}.*; valid devices here: cpu$"):
        load_model(path, map_location=location)  # was: "checkpoint ... is damaged (RuntimeError)"


def test_load_model_puts_the_model_on_map_location(cache_dir, tmp_path, monkeypatch):
    """A map_location device gives the model on it (was: always a CPU model, the weights copied into a model built
    on the CPU).  Without CUDA, ``Module.to`` is watched: load_model moves the model to the device it was given."""
    path = save_model(tmp_path / "net.pt", _models(cache_dir)["regressor"]())
    if torch.cuda.is_available():
        model = load_model(path, map_location="cuda")
        assert {p.device.type for p in model.parameters()} == {"cuda"}
        return
    moved, to = [], torch.nn.Module.to
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or to(self, *a, **k))
    load_model(path, map_location=torch.device("cpu"))
    assert (torch.device("cpu"),) in moved
    moved.clear()
    load_model(path)  # the default "cpu" too
    assert (torch.device("cpu"),) in moved


@pytest.mark.parametrize("name, cast, dtype", [
    ("regressor", lambda m: m.double(), torch.float64),  # built in float32 (spec dtype None), cast after
    ("regressor", lambda m: m, torch.float32),
    ("classifier", lambda m: m.float(), torch.float32),  # built in float64 (spec dtype float64), cast after
])
def test_load_model_keeps_the_dtype_of_the_saved_weights(cache_dir, tmp_path, name, cast, dtype):
    """The model comes back as saved: one cast with .double() after it was built came back in float32 (its
    weights rounded), as its spec says."""
    model = cast(_models(cache_dir)[name]()).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)  # digits float32 cannot hold
    path = save_model(tmp_path / "net.pt", model)
    assert set(torch.load(path, weights_only=True)) == {"spec", "state_dict"}  # the format of older files
    loaded = load_model(path)
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert a.dtype == b.dtype and torch.equal(a, b), k
    x = torch.randn(2, 96, 1, dtype=dtype) if name == "regressor" else torch.randn(2, 192, 2, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("name, cast, dtype", [
    ("classifier", lambda m: m, torch.float32),  # built and saved in float64 (spec dtype float64)
    ("regressor", lambda m: m.double(), torch.float32),  # built in float32, saved after .double()
    ("regressor", lambda m: m, torch.float64),
])
def test_load_model_with_a_dtype_override_builds_that_dtype(cache_dir, tmp_path, name, cast, dtype):
    """``load_model(p, dtype=)`` wins over the saved weights' dtype (was: cast back to the weights' dtype)."""
    model = cast(_models(cache_dir)[name]()).eval()
    path = save_model(tmp_path / "net.pt", model)
    loaded = load_model(path, dtype=dtype)
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a.to(b.dtype), b), k


def test_a_spec_of_whole_number_float_indices_still_loads(cache_dir, tmp_path):
    """A file saved before float indices were refused (``indices=np.arange(64.)``: its spec holds 0.0, 1.0, ...)
    loads, its indices as integers; a direct call with float indices and a spec of fractional ones stay refused."""
    model = DeepSphereClassifier(4, 1, channels=(2,), indices=np.arange(64), K=3, k=8, cache_dir=cache_dir).eval()
    state = {"spec": model.spec.to_dict(), "state_dict": model.state_dict()}
    state["spec"]["input"]["indices"] = [float(i) for i in range(64)]  # as an older file holds them
    path = tmp_path / "old.pt"
    torch.save(state, path)
    loaded = load_model(path)
    assert loaded.sampling.indices.dtype == np.int64 and np.array_equal(loaded.sampling.indices, np.arange(64))
    x = torch.randn(2, 64, 1)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="indices must be an integer array, got dtype float64 of whole numbers"):
        DeepSphereClassifier(4, 1, channels=(2,), indices=np.arange(64.0), K=3, k=8, cache_dir=cache_dir)
    state["spec"]["input"]["indices"][1] = 1.5
    with pytest.raises(ValueError, match=r"non-integer value\(s\) \[1.5\]"):
        build_model(state["spec"])


def test_save_model_of_a_module_without_a_spec_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"^save_model saves the models of deepsphere_gen.models .*not a Linear; save its "
                                        r"weights with torch.save\(model.state_dict\(\), path\) instead$"):
        save_model(tmp_path / "x.pt", torch.nn.Linear(2, 2))  # was: AttributeError 'Linear' object has no attribute 'spec'
    assert not (tmp_path / "x.pt").exists()


def _tampered(path, edit):
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    return path


FIT = "does not fit the network its spec builds: "


@pytest.mark.parametrize("edit, match", [
    (lambda s: s["state_dict"].pop("head.weight"), FIT + r"1 of 20 entries missing \(first: 'head.weight'\)$"),
    (lambda s: s["state_dict"].update(extra=torch.zeros(2)), FIT + r"1 unexpected \(first: 'extra'\)$"),
    (lambda s: s["state_dict"].update({"head.bias": torch.zeros(5)}),
     FIT + r"'head.bias' is \(5,\) in the file, \(3,\) in the network$"),
    (lambda s: s["spec"]["head"].update(n_classes=4), FIT + r"'head.weight' is \(3, 8\) in the file, \(4, 8\) in the network$"),
    (lambda s: s.update(state_dict={}), r"has an empty state dict \(20 entries expected\)$"),
])
def test_load_model_of_weights_that_do_not_fit_is_a_one_line_error(edit, match, cache_dir, tmp_path):
    """A tampered state dict or an edited spec: the training checkpoints' one-line check, not torch's
    multi-line ``load_state_dict`` error."""
    model = _models(cache_dir)["classifier"]()
    path = _tampered(save_model(tmp_path / "net.pt", model), edit)
    with pytest.raises(ValueError) as err:
        load_model(path)
    msg = str(err.value)
    assert re.match(f"checkpoint {re.escape(str(path))} {match}", msg), msg
    assert "\n" not in msg
