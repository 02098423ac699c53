"""Import rules of the package (docs/architecture.md), checked on the source with ``ast``.

1. Layers: a module imports only from its own sub-package and from lower layers
   (``sampling`` < ``graph``, ``harmonic`` < ``nn``, ``datasets``, ``equivariance`` <
   ``models``, ``training`` < ``experiments``, ``bench`` < ``commands``, ``cli``); siblings
   of one layer do not import each other.  The root utilities (``_validation``, ``_io``,
   ``_cache_dirs``, ``_fingerprint``, ``_memory``, ``_seeds``, ``_lazy``, ``_env``, ``_platform``, ``_devices``, ``_warnings``, the version in ``__init__``) are below everything.
2. No module imports another sub-package's private module (``deepsphere_gen.nn._signal``
   from outside ``nn``) or a private name (``_helper``) defined in another file.
3. No import cycles between modules, counting imports made inside functions too.

Imports inside functions count for every rule: deferring an import does not hide a
dependency.  ``KNOWN`` lists the few remaining exceptions, each with the reason.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "deepsphere_gen"

#: layer of each top-level name under deepsphere_gen (a sub-package or a root module).
LAYER = {
    "": 0, "_validation": 0, "_io": 0, "_cache_dirs": 0, "_fingerprint": 0, "_memory": 0, "_seeds": 0, "_lazy": 0, "_env": 0, "_platform": 0, "_devices": 0, "_warnings": 0,
    "sampling": 1,
    "graph": 2, "harmonic": 2,
    "nn": 3, "datasets": 3, "equivariance": 3,
    "models": 4, "training": 4,
    "experiments": 5, "bench": 5,
    "commands": 6, "cli": 6,
}

#: (importing module, imported module, name) pairs allowed for now, with why.
KNOWN = {
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / PKG).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports() -> list[tuple[str, str, str, int]]:
    """(module, imported module, imported name or "", line) for every import of the package."""
    found = []
    for mod, path in MODULES.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(mod, a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == PKG]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != PKG:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.append((mod, sub, "", node.lineno) if sub in MODULES else (mod, target, a.name, node.lineno))
    return found


IMPORTS = _imports()


def _top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    assert sorted({_top(m) for m in MODULES} - set(LAYER)) == []


def _layer_violations(imports) -> list[str]:
    bad = []
    for mod, target, name, line in imports:
        a, b = _top(mod), _top(target)
        if a == b or (mod, target, name) in KNOWN:
            continue
        if LAYER[b] >= LAYER[a]:
            bad.append(f"{mod}:{line} (layer {LAYER[a]}) imports {target} (layer {LAYER[b]})")
    return bad


def _privacy_violations(imports) -> list[str]:
    bad = []
    for mod, target, name, line in imports:
        if (mod, target, name) in KNOWN:
            continue
        private_module = [p for p in target.split(".")[2:] if p.startswith("_")]
        if private_module and _top(mod) != _top(target):
            bad.append(f"{mod}:{line} imports the private module {target} of another package")
        elif name.startswith("_") and not name.startswith("__") and target != mod:
            bad.append(f"{mod}:{line} imports the private name {name} from {target}")
    return bad


def _cycles(imports, modules) -> list[list[str]]:
    """Strongly connected components (Tarjan) of more than one module."""
    graph = {m: set() for m in modules}
    for mod, target, _, _ in imports:
        if target in graph and target != mod:
            graph[mod].add(target)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_lower_layer_imports_a_higher_one():
    assert _layer_violations(IMPORTS) == []


def test_no_private_module_or_name_of_another_file():
    assert _privacy_violations(IMPORTS) == []


def test_no_import_cycles():
    """Counts imports inside functions and through a package's ``__init__``."""
    assert _cycles(IMPORTS, MODULES) == []


@pytest.mark.parametrize("key", sorted(KNOWN))
def test_known_exceptions_still_exist(key):
    """An exception that no longer occurs must leave KNOWN (so the list only shrinks)."""
    assert key in {(m, t, n) for m, t, n, _ in IMPORTS}, f"{key} no longer imported: remove it from KNOWN"


def test_the_checks_catch_violations():
    """The parser resolves relative imports as the rules assume, and each rule fires on a
    made-up violation."""
    seen = {(m, t, n) for m, t, n, _ in IMPORTS}
    assert ("deepsphere_gen.nn._bridge", "deepsphere_gen.harmonic", "SphericalSynthesis") in seen
    assert ("deepsphere_gen.graph._knn", "deepsphere_gen.graph._neighbours", "knn_distances") in seen
    assert ("deepsphere_gen.graph", "deepsphere_gen.graph._knn", "knn_graph") in seen  # the __init__'s from ._knn import
    up = [("deepsphere_gen.harmonic._sht", "deepsphere_gen.nn", "ChebConv", 1)]
    side = [("deepsphere_gen.graph._knn", "deepsphere_gen.harmonic", "SHT", 1)]
    assert len(_layer_violations(up)) == 1 and len(_layer_violations(side)) == 1
    private = [("deepsphere_gen.models.x", "deepsphere_gen.nn._signal", "GeneralizedSignal", 1),
               ("deepsphere_gen.nn.a", "deepsphere_gen.nn.b", "_helper", 2)]
    assert len(_privacy_violations(private)) == 2
    ring = [("a", "b", "", 1), ("b", "c", "", 1), ("c", "a", "", 1), ("c", "d", "", 1)]
    assert _cycles(ring, ["a", "b", "c", "d"]) == [["a", "b", "c"]]


#: packages whose modules are found by discovery, not listed (the bench suites: benchmarks/README.md lists them).
UNLISTED_PACKAGES = {"deepsphere_gen/bench/suites"}


def test_every_package_docstring_names_each_of_its_modules():
    """docs/architecture.md: every package ``__init__`` docstring is a table of its modules, so a
    new module must get its row (``:mod:`.name```)."""
    missing = []
    for init in sorted((ROOT / PKG).rglob("__init__.py")):
        package = init.parent
        if package.relative_to(ROOT).as_posix() in UNLISTED_PACKAGES:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        modules = [p.stem for p in package.glob("*.py") if p.stem != "__init__"]
        modules += [p.name for p in package.iterdir() if (p / "__init__.py").is_file()]
        missing += [f"{package.relative_to(ROOT)}: {name}" for name in sorted(modules) if f":mod:`.{name}`" not in doc]
    assert missing == []


def test_the_positive_integer_checks_listed_as_written_out_are():
    """docs/architecture.md names the classes whose positive-integer checks are still written out by hand; one that
    calls ``_validation.check_positive_int`` (PlanarCNN, once it moved to the helper) is a stale entry."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    listed = text[text.index("Some checks are still written out"):]
    listed = set(re.findall(r"`(\w+)`", listed[:listed.index("\n* **")]))
    stale = []
    for path in sorted((ROOT / PKG).rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.ClassDef) and node.name in listed \
                    and "check_positive_int(" in ast.get_source_segment(source, node):
                stale.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert stale == []
