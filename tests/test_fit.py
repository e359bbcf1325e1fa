"""The tuner: gradients through the whole loss, covariance, bootstrap, several bases, bad input."""
import math

import numpy as np
import pytest
import torch

from fastrsa.errors import DatasetError, ParameterError
from fastrsa.fit import CHI2_95_2D, PARAMS, Problem, bootstrap, fit, hessian, inside_ellipse, landscape


@pytest.mark.parametrize("loss", ["swd", "w1", "chi2"])
def test_gradcheck_through_weights_and_loss(string_ds, pair, loss):
    obs = "multiplicity,thrust" if loss == "swd" else "multiplicity,thrust,x"
    problem = Problem([string_ds.path], pair[1].path, obs, loss=loss, n_projections=8)
    theta = torch.tensor([[0.70, 0.92, 0.33]], dtype=torch.float64, requires_grad=True)
    # Sorting-based losses are piecewise smooth (kinks where the two CDFs cross at a sample point), so the
    # finite-difference step must be small enough not to straddle one.
    if loss != "chi2":
        assert torch.autograd.gradcheck(lambda t: problem.evaluate(t)[0], (theta,), eps=1e-8, atol=1e-6, rtol=1e-5)
    else:
        # The pseudo-chi2 holds its variances constant in the gradient (losses.PseudoChi2): its gradient is
        # that of the chi2 with the variances frozen at theta, which is gradchecked.
        from fastrsa.testing import frozen_variance_loss
        chi2_frozen = frozen_variance_loss(problem, theta.detach())
        assert torch.autograd.gradcheck(chi2_frozen, (theta,), eps=1e-8, atol=1e-6, rtol=1e-5)
        g_frozen, = torch.autograd.grad(chi2_frozen(theta).sum(), theta)
        g_loss, = torch.autograd.grad(problem.evaluate(theta)[0].sum(), theta)
        torch.testing.assert_close(g_loss, g_frozen, rtol=1e-12, atol=0)
    # loss_and_grad (chunked loss, one pass back through the weight op) gives the same gradient.
    l1, g1 = problem.loss_and_grad(theta.detach().repeat(3, 1), chunk=2)[:2]
    l0 = problem.evaluate(theta)[0]
    (g0,) = torch.autograd.grad(l0.sum(), theta)
    assert torch.allclose(g1, g0.expand(3, 3), rtol=1e-12, atol=1e-14)
    assert float(l1[0]) == pytest.approx(float(l0.detach()))


def test_fit_approaches_truth_with_covariance(pair, tmp_path):
    problem = Problem([pair[0].path], pair[1].path, "multiplicity,shapes")
    res = fit(problem, steps=60, progress=False)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    cov = np.asarray(res.cov)
    assert cov.shape == (2, 2) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.all(np.linalg.eigvalsh(np.asarray(res.hessian)) > 0)
    # The a-b valley: the uncertainties are strongly positively correlated.
    assert res.correlation() > 0.5
    ok, chi2 = inside_ellipse([0.68, 0.98], res.theta[:2], cov)
    assert ok, f"truth outside the 95% ellipse: chi2 = {chi2:.2f} (seeded; p = {math.exp(-chi2 / 2):.2g})"
    d = res.to_dict()
    for key in ("a", "b", "sigma", "cov", "history", "diagnostics", "warnings", "loss"):
        assert key in d
    assert d["sigma"] == 0.335 and {"n_eff_frac", "mean_weight"} <= set(d["diagnostics"])
    assert {"theta", "loss", "n_eff_frac"} <= set(d["history"][0])


def test_more_observables_narrow_the_ellipse(pair, tmp_path):
    """Multiplicity alone barely separates a from b: its 95% ellipse must be much larger than with shapes
    and a classifier score. Where the ellipse is small, refitted bootstrap replicas converge, give a
    smaller ellipse too, and agree with the sandwich covariance within a factor 3 in sigma. (Along the flat
    multiplicity-only valley the replicas do not converge in a test-sized run, so there the sandwich
    ellipse is the measure; seeded.)"""
    from fastrsa.observables.classifier import train_classifier
    clf = train_classifier(pair[0].path, pair[1].path, epochs=3, progress=False)
    clf.save(tmp_path / "clf.pt")
    area = lambda cov: math.pi * CHI2_95_2D * math.sqrt(np.linalg.det(np.asarray(cov)))  # noqa: E731
    mult = fit(Problem([pair[0].path], pair[1].path, "multiplicity"), steps=40, progress=False, replicas=16)
    problem = Problem([pair[0].path], pair[1].path, f"multiplicity,shapes,classifier:{tmp_path / 'clf.pt'}")
    full = fit(problem, steps=40, progress=False, replicas=16)
    assert area(full.cov) < 0.2 * area(mult.cov), (area(full.cov), area(mult.cov))
    bs = bootstrap(problem, full.theta, replicas=16, iters=10, seed=5, progress=False)
    assert bs["gradient_reduced_20x"] >= 12, bs["gradient_reduced_20x"]
    assert area(bs["cov"]) < 0.5 * area(mult.cov)
    ratio = np.diag(np.asarray(full.cov)) / np.diag(np.asarray(bs["cov"]))
    assert np.all((ratio > 1 / 9) & (ratio < 9)), ratio     # variances: sigma within a factor 3


def test_several_bases_use_the_one_that_covers(pair, tmp_path):
    from fastrsa.generation import generate
    near = generate(tmp_path / "near", events=3000, a=0.62, b=1.08, seed=23, jobs=2, progress=False)
    problem = Problem([pair[0].path, near.path], pair[1].path, "multiplicity,thrust")
    th = torch.tensor([[0.72, 0.88, 0.335], [0.62, 1.08, 0.335]], dtype=torch.float64)
    p, alpha, neff = problem.mixture(problem.log_weights(th))
    assert torch.allclose(p.sum(-1), torch.ones(2, dtype=torch.float64))
    # Each base counts in proportion to its effective sample size at the point.
    n_eff = neff * torch.tensor([3000.0, 3000.0], dtype=torch.float64)
    assert torch.allclose(alpha, n_eff / n_eff.sum(-1, keepdim=True))
    assert alpha[0, 0] > alpha[0, 1] and alpha[1, 1] > alpha[1, 0]
    assert float(neff[0, 0]) == pytest.approx(1.0) and float(neff[1, 1]) == pytest.approx(1.0)
    res = fit(problem, start=(0.62, 1.08, 0.335), steps=5, progress=False, replicas=8)
    assert res.history[0]["best_base"] == 1 and len(res.history[0]["alpha"]) == 2


def test_landscape_batches_agree_with_single_points(pair):
    problem = Problem([pair[0].path], pair[1].path, "multiplicity")
    land = landscape(problem, [0.65, 0.72], [0.88, 1.0], 0.335, chunk=3, progress=False)
    l, g = problem.loss_and_grad(torch.tensor([[0.72, 1.0, 0.335]], dtype=torch.float64))[:2]
    assert land["loss"][1][1] == pytest.approx(float(l[0]), rel=1e-12)
    assert land["grad_b"][1][1] == pytest.approx(float(g[0, 1]), rel=1e-10)
    assert np.asarray(land["n_eff_frac"]).shape == (2, 2) and land["n_eff_frac"][1][0] == pytest.approx(1.0)


def test_hessian_of_a_quadratic_loss(pair):
    """Central differences of the analytic gradient recover the curvature of the loss values: a chi2 to a
    pseudo-measurement of the target's multiplicity, its variances fixed (the gradient is then the derivative
    of the values; the fit's losses hold their variances constant only in the gradient)."""
    from fastrsa.fit.measured import DataTarget, pseudo_measurement
    from fastrsa.observables import compute
    from fastrsa.store import load_hadrons
    mult = compute(load_hadrons(pair[1].path), ["multiplicity"])["multiplicity"].values
    m = pseudo_measurement(mult, np.arange(4.5, 40.5), "fraction")
    problem = Problem([pair[0].path], data=[DataTarget(m, "multiplicity", "fraction")])
    theta = [0.70, 0.93, 0.335]
    problem.loss.fix_variance(torch.from_numpy(problem.event_weights(theta)))
    H = hessian(problem, theta, ["a", "b"], steps=[2e-3, 2e-3])
    h = 2e-3

    def L(da, db):
        t = torch.tensor([[theta[0] + da, theta[1] + db, 0.335]], dtype=torch.float64)
        with torch.no_grad():
            return float(problem.evaluate(t)[0])
    haa = (L(h, 0) - 2 * L(0, 0) + L(-h, 0)) / h ** 2
    hab = (L(h, h) - L(h, -h) - L(-h, h) + L(-h, -h)) / (4 * h * h)
    assert H[0, 0] == pytest.approx(haa, rel=0.02) and H[0, 1] == pytest.approx(hab, rel=0.02)


def test_bad_input(pair, string_ds, tmp_path):
    from fastrsa.generation import generate
    other = generate(tmp_path / "e20", events=50, energy=20.0, seed=4, jobs=1, progress=False)
    with pytest.raises(DatasetError, match="same process and energy"):
        Problem([pair[0].path], other.path, "multiplicity")
    with pytest.raises(ParameterError, match="does not exist"):
        Problem([pair[0].path], pair[1].path, "multiplicity,nonsense")
    with pytest.raises(ParameterError, match="swd' projects event-level observables; \\['pt'\\]"):
        Problem([pair[0].path], pair[1].path, "multiplicity,pt", loss="swd")
    problem = Problem([pair[0].path], pair[1].path, "multiplicity")
    with pytest.raises(ParameterError, match="do not cover this point"):
        fit(problem, start=(0.05, 2.0, 0.2), progress=False)
    with pytest.raises(ParameterError, match="params"):
        fit(problem, params="a,c", progress=False)
    with pytest.raises(DatasetError, match="no such dataset"):
        Problem([tmp_path / "missing"], pair[1].path)
    assert PARAMS == ("a", "b", "sigma")


@pytest.fixture(scope="module")
def pair_tiny(tmp_path_factory):
    from fastrsa.generation import generate
    d = tmp_path_factory.mktemp("pair_tiny")
    return (generate(d / "base", events=8, seed=51, progress=False),
            generate(d / "target", events=40, a=0.68, b=0.98, seed=52, progress=False))


def test_fit_path_on_every_device(pair_tiny, device, monkeypatch):
    """Problem, fit, landscape and bootstrap run the weight kernel of `device` (CPU, the CUDA simulator,
    CUDA) and give the CPU kernel's numbers."""
    launches = []
    if device.name != "cpu":
        from fastrsa.hadronization.kernels import cuda as cuda_kernels
        real = cuda_kernels.launch
        monkeypatch.setattr(cuda_kernels, "launch", lambda *a, **k: (launches.append(1), real(*a, **k)))

    def run(dev, backend):
        problem = Problem([pair_tiny[0].path], pair_tiny[1].path, "multiplicity,thrust", n_projections=8,
                          device=dev, backend=backend)
        ev = problem.loss_and_grad(torch.tensor([[0.70, 0.92, 0.33], [0.66, 1.0, 0.34]], dtype=torch.float64))
        res = fit(problem, steps=2, replicas=4, progress=False)
        land = landscape(problem, [0.68, 0.72], [0.9], 0.335, progress=False)
        bs = bootstrap(problem, res.theta, replicas=2, iters=1, progress=False)
        return ev, res, land, bs
    ev, res, land, bs = run(device.torch_device, device.backend)
    assert (len(launches) >= 8) == (device.name != "cpu"), len(launches)   # every phase ran the CUDA kernel
    ev0, res0, land0, bs0 = run("cpu", "cpu")
    assert torch.allclose(ev.loss.cpu(), ev0.loss, rtol=1e-10) and torch.allclose(ev.grad.cpu(), ev0.grad, rtol=1e-9)
    np.testing.assert_allclose(res.theta, res0.theta, rtol=1e-10)
    np.testing.assert_allclose(res.cov, res0.cov, rtol=1e-6)
    np.testing.assert_allclose(land["loss"], land0["loss"], rtol=1e-10)
    np.testing.assert_allclose(bs["points"], bs0["points"], rtol=1e-8)
    with pytest.raises(ParameterError, match="backend"):
        Problem([pair_tiny[0].path], pair_tiny[1].path, "multiplicity", backend="gpu")


def test_unusable_device_and_bad_bootstrap_settings_are_one_clear_error(pair_tiny):
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no usable CUDA"):
            Problem([pair_tiny[0].path], pair_tiny[1].path, "multiplicity", device="cuda")
    with pytest.raises(ParameterError, match="device = 'foo'"):
        Problem([pair_tiny[0].path], pair_tiny[1].path, "multiplicity", device="foo")
    problem = Problem([pair_tiny[0].path], pair_tiny[1].path, "multiplicity")
    with pytest.raises(ParameterError, match="iters = 0"):
        bootstrap(problem, [0.72, 0.88, 0.335], iters=0, progress=False)


def test_the_fitted_point_survives_its_covariance_step(pair_tiny, monkeypatch):
    """A step size that throws a to the boundary a = 0 still gives a Hessian (one-sided there), and a
    covariance that fails (singular Hessian, Ctrl-C) leaves the fitted point with the reason, not nothing."""
    problem = Problem([pair_tiny[0].path], pair_tiny[1].path, "multiplicity", n_projections=4)
    H = hessian(problem, [0.0, 0.9, 0.335], ["a", "b"])       # a - 1e-3 would be outside the model
    assert np.all(np.isfinite(H))
    H_inside = hessian(problem, [0.0, 0.9, 0.335], ["b"])
    assert H[1, 1] == pytest.approx(H_inside[0, 0], rel=1e-12)
    g = problem.loss_and_grad(torch.tensor([[1e-3, 0.9, 0.335], [0.0, 0.9, 0.335]], dtype=torch.float64)).grad
    assert H[0, 0] == pytest.approx(float(g[0, 0] - g[1, 0]) / 1e-3, rel=1e-9)      # forward difference, step h
    import fastrsa.fit.optimize as opt

    def broken(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(opt, "covariance", broken)
    res = fit(problem, steps=2, replicas=4, progress=False)
    assert res.interrupted and any("no covariance (interrupted)" in w for w in res.warnings)
    d = res.to_dict()
    assert d["a"] == res.theta[0] and d["errors"] == {"a": None, "b": None} and "fit: a = " in res.summary()
    assert "nan" not in res.summary()


def test_bootstrap_counts_reach_the_loss(pair):
    """Every evaluation with bootstrap multiplicities hands them to the loss as counts ([K, N_total] for the
    bases, [K, N_target]), so the chi2 variances count a k-fold event k times (losses module docstring)."""
    problem = Problem([pair[0].path], pair[1].path, "multiplicity", loss="chi2")
    seen = []
    inner = problem.loss

    class Spy(torch.nn.Module):
        constant_variance = True

        def forward(self, p, q=None, counts=None):
            seen.append(None if counts is None else tuple(c.shape for c in counts))
            return inner(p, q, counts=counts)
    problem.loss = Spy()
    theta = [0.70, 0.93, 0.335]
    n, nt = sum(problem.sizes), len(problem.target)
    problem.replica_gradients(theta, [0, 1], replicas=3, seed=0)
    bm, tm = problem.poisson_multiplicities(2, 1)
    problem.loss_and_grad(torch.tensor([theta, theta], dtype=torch.float64), bm, tm)
    problem.evaluate(torch.tensor([theta, theta], dtype=torch.float64), bm, tm)
    problem.loss_and_grad(torch.tensor([theta], dtype=torch.float64))
    assert seen == [((3, n), (3, nt)), ((2, n), (2, nt)), ((2, n), (2, nt)), None]


def test_bootstrap_refits_of_a_chi2_reach_their_roots(pair):
    """A chi2 holds its variances constant in the gradient, so bootstrap() takes steps by the Newton decrement
    of that gradient (the value still moves with the variances): the replicas' gradients fall 20x."""
    problem = Problem([pair[0].path], pair[1].path, "multiplicity,thrust", loss="chi2")
    res = fit(problem, steps=40, progress=False, replicas=8)
    bs = bootstrap(problem, res.theta, replicas=8, iters=12, seed=2, progress=False)
    assert bs["gradient_reduced_20x"] >= 7, bs["gradient_reduced_20x"]
