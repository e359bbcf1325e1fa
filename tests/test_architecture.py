"""The package's shape: layers import only downwards, no import cycles, and a new observable, loss or
parameter is one registration that the rest of the code picks up."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import fastrsa

PKG = Path(fastrsa.__file__).parent
# Lower number = lower layer. A module may import modules of lower layers and of its own package.
LAYERS = {"errors": 0, "params": 1, "progress": 1, "cluster": 1, "eventshapes": 1, "swdkernel": 1, "store": 2, "pythia": 2, "measurements": 2, "generation": 4,
          "hadronization": 3, "observables": 3, "shower": 3, "losses": 4, "fit": 5, "plots": 6, "cli": 7,
          "testing": 7}
# The one upward reach, documented in docs/architecture.md: Dataset.to_torch, a user convenience that
# imports the hadronization layer lazily inside the method.
ALLOWED_UP = {("store.dataset", "hadronization.batch")}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if parts and parts[-1] == "__main__":
            parts = parts[:-1]
        yield ".".join(parts), path, path.name == "__init__.py"


def _imports(name, path, is_pkg, top_level_only):
    """fastrsa-internal modules imported by module `name` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1] if node.level > 1 else pkg
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("fastrsa"):
                mod = node.module[len("fastrsa."):] if node.module != "fastrsa" else ""
            else:
                continue
            for alias in node.names:
                full = f"{mod}.{alias.name}" if mod else alias.name
                out.add(full if (PKG / (full.replace(".", "/") + ".py")).exists()
                        or (PKG / full.replace(".", "/")).is_dir() else mod)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fastrsa."):
                    out.add(alias.name[len("fastrsa."):])
    return {m for m in out if m}


def _layer(mod):
    return LAYERS[mod.split(".")[0]]


def test_every_module_has_a_layer():
    for name, _, _ in _modules():
        if name:
            assert name.split(".")[0] in LAYERS, f"fastrsa.{name} is in no layer; add it to LAYERS and the docs"


def test_imports_only_go_down():
    bad = []
    for name, path, is_pkg in _modules():
        if not name:
            continue            # fastrsa/__init__.py: the public API gathers from every layer
        for mod in _imports(name, path, is_pkg, top_level_only=False):
            top, own = mod.split(".")[0], name.split(".")[0]
            if top == own or (name, mod) in ALLOWED_UP:
                continue
            if _layer(mod) >= _layer(name):
                bad.append(f"fastrsa.{name} imports fastrsa.{mod}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {name: _imports(name, path, is_pkg, top_level_only=True) for name, path, is_pkg in _modules()}
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in graph.get(n, ()):
            if m not in graph:
                continue
            if state.get(m) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m, stack + [m])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [n])


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The two tests above can fail: a fake package with an upward import and a cycle is caught."""
    fake = tmp_path / "fastrsa"
    (fake / "store").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "errors.py").write_text("from . import losses\n")
    (fake / "losses.py").write_text("from .errors import X\n")
    (fake / "store" / "__init__.py").write_text("")
    (fake / "store" / "x.py").write_text("from ..fit import y\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match="fastrsa.store.x imports fastrsa.fit"):
        test_imports_only_go_down()


def test_public_api():
    for name in ("open_dataset", "lund_log_weights", "LundReweighter", "diagnostics", "Dataset", "SPACE",
                 "ParameterSpace", "BaseParams"):
        assert name in dir(fastrsa) and getattr(fastrsa, name) is not None


def test_a_new_observable_is_one_registration(pair_small):
    from fastrsa.fit import Problem
    from fastrsa.observables import registry
    from fastrsa.observables.registry import register

    @register("leading_pz", "event", "largest |pz| of the event's hadrons [GeV]")
    def leading_pz(h):
        return np.maximum.reduceat(np.abs(h.pz), h.offsets[:-1])
    try:
        problem = Problem([pair_small[0].path], pair_small[1].path, "multiplicity,leading_pz", loss="w1")
        assert problem.names == ["multiplicity", "leading_pz"]
        assert np.all(problem.all_sim["leading_pz"].values > 0)
        loss, grad = problem.loss_and_grad(torch.tensor([[0.7, 0.9, 0.335]], dtype=torch.float64))[:2]
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    finally:
        del registry.OBSERVABLES["leading_pz"]


def test_a_new_loss_is_one_registration(pair_small):
    from fastrsa import losses
    from fastrsa.fit import Problem

    @losses.register_loss("mean_gap", "squared difference of the weighted means")
    def _build(names, sim, tgt, target_weights, n_sim, n_target, n_projections, seed):
        x = torch.tensor(sim[names[0]].values)
        y = float(np.mean(tgt[names[0]].values))

        class MeanGap(torch.nn.Module):
            def forward(self, p, q=None):
                return ((p / p.sum(-1, keepdim=True)) @ x - y) ** 2
        return MeanGap()
    try:
        problem = Problem([pair_small[0].path], pair_small[1].path, "multiplicity", loss="mean_gap")
        theta = torch.tensor([[0.70, 0.92, 0.33]], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: problem.evaluate(t)[0], (theta,), eps=1e-7, atol=1e-8)
    finally:
        del losses.LOSSES["mean_gap"]


def test_a_new_parameter_is_one_registration():
    """A parameter registered in a space is validated, clamped, parsed and printed by the same code."""
    from fastrsa.errors import ParameterError
    from fastrsa.params import SPACE, Parameter, ParameterSpace
    space = ParameterSpace(list(SPACE))
    space.register(Parameter("lam", "DQCD:Lambda", "GeV", 0.0, True, 1e-3, 0.4, "a", "shower", 0,
                             "QCD scale of the shower", upper=2.0, typical="0.2-0.6"))
    assert space.names == ("a", "b", "sigma", "lam") and space.columns("shower") == [3]
    assert space.columns("lund") == [0, 1, 2]
    assert space.parse_names("lam,a") == ["a", "lam"]
    with pytest.raises(ParameterError, match=r"lam = 3.0 outside the model \(0 < lam <= 2; DQCD:Lambda \[GeV\]\)"):
        space.check([0.7, 0.9, 0.3, 3.0])
    x = space.clamp(torch.tensor([-1.0, 5.0], dtype=torch.float64), ["lam", "lam"])
    assert x.tolist() == [1e-3, 2.0]
    with pytest.raises(ParameterError, match="registered already"):
        space.register(Parameter("a", "x", "", 0, False, 0, 0, "a", "lund", 0, ""))


@pytest.fixture(scope="module")
def pair_small(tmp_path_factory):
    from fastrsa.generation import generate
    d = tmp_path_factory.mktemp("pair_small")
    return (generate(d / "base", events=300, seed=41, progress=False),
            generate(d / "target", events=300, a=0.68, b=0.98, seed=42, progress=False))


def test_parameter_domains_are_pythias_allowed_ranges():
    """SPACE's domains are the installed Pythia's own ranges of the settings (sigma's lower end aside,
    where the pT weight underflows; see fastrsa/params.py)."""
    from fastrsa.params import SPACE
    from fastrsa.pythia.records import import_pythia
    py = import_pythia().Pythia("", False)
    for p in SPACE:
        (parm,) = py.settings.getParmMap(p.setting).values()
        assert p.upper == parm.valMax and p.default == parm.valDefault, p.name
        assert p.lower == parm.valMin or (p.name == "sigma" and p.lower > parm.valMin), p.name


def test_points_outside_the_model_are_refused_not_nan(string_ds):
    """b = 1e16 used to give NaN weights and sigma = 1e-155 an infinite gradient: refused with the domain."""
    from fastrsa.errors import ParameterError
    batch = string_ds.to_torch()
    for theta, msg in (((0.7, 1e16, 0.3), r"b = 1e\+16 outside the model"), ((0.7, 1e-14, 0.3), "b = 1e-14"),
                       ((0.7, 0.9, 1e-155), "sigma = 1e-155 outside the model"), ((2.5, 0.9, 0.3), "a = 2.5")):
        with pytest.raises(ParameterError, match=msg):
            fastrsa.lund_log_weights(batch, torch.tensor(theta, dtype=torch.float64))
    edge = torch.tensor([[0.0, 0.2, 0.01], [2.0, 2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    lw = fastrsa.lund_log_weights(batch, edge)
    lw.sum().backward()
    assert torch.isfinite(lw).all() and torch.isfinite(edge.grad).all()
