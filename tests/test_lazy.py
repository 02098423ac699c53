"""``_lazy.lazy_exports``: a package's public names imported from their modules at first use."""
import sys

import pytest

from deepsphere_gen._lazy import lazy_exports


def _package(tmp_path, monkeypatch, name="lazypkg"):
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text(
        "from deepsphere_gen._lazy import lazy_exports\n"
        "__getattr__, __dir__, __all__ = lazy_exports(__name__, {'heavy': ('answer', 'Thing'), 'light': ('small',)})\n")
    (root / "heavy.py").write_text("answer = 42\nclass Thing:\n    pass\n")
    (root / "light.py").write_text("small = 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    import importlib

    return importlib.import_module(name)


def test_names_load_their_module_at_first_use(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch)
    assert pkg.__all__ == ["answer", "Thing", "small"]
    assert "lazypkg.heavy" not in sys.modules and "lazypkg.light" not in sys.modules
    assert pkg.small == "x" and "lazypkg.light" in sys.modules and "lazypkg.heavy" not in sys.modules
    assert pkg.answer == 42 and pkg.Thing is sys.modules["lazypkg.heavy"].Thing
    assert "answer" in vars(pkg)  # a plain attribute from now on
    assert {"answer", "Thing", "small"} <= set(dir(pkg))
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'nope'"):
        pkg.nope


def test_a_name_under_two_modules_is_refused():
    with pytest.raises(ValueError, match="listed under two modules"):
        lazy_exports("p", {"a": ("x",), "b": ("x",)})
