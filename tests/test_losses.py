"""Each loss against an independent reference, batching, gradients, and sorting done once."""
import numpy as np
import pytest
import scipy.stats
import torch

from fastrsa.errors import ParameterError
from fastrsa.losses import PseudoChi2, SlicedWasserstein, Wasserstein1D, default_bins


@pytest.fixture
def samples():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=300), rng.normal(0.4, 1.3, size=250)
    w, v = rng.exponential(size=300), rng.exponential(size=250)
    return x, y, w, v


def test_w1_matches_scipy_with_weights(samples):
    x, y, w, v = samples
    loss = Wasserstein1D(x, y, target_weights=v)
    assert float(loss(torch.tensor(w))) == pytest.approx(scipy.stats.wasserstein_distance(x, y, w, v), rel=1e-12)
    # Weights passed at call time replace the stored target weights.
    v2 = v[::-1].copy()
    assert float(loss(torch.tensor(w), torch.tensor(v2))) == pytest.approx(
        scipy.stats.wasserstein_distance(x, y, w, v2), rel=1e-12)


def test_w1_hadron_level_uses_event_weights(samples):
    rng = np.random.default_rng(2)
    n_ev = 40
    counts = rng.integers(0, 6, size=n_ev)
    idx = np.repeat(np.arange(n_ev), counts)
    vals = rng.normal(size=len(idx))
    w = rng.exponential(size=n_ev)
    y = rng.normal(0.2, 1, size=77)
    loss = Wasserstein1D(vals, y, sim_index=idx, n_sim_events=n_ev, scale=2.0)
    ref = scipy.stats.wasserstein_distance(vals, y, w[idx], np.ones(77)) / 2.0
    assert float(loss(torch.tensor(w))) == pytest.approx(ref, rel=1e-12)


def test_sliced_matches_mean_of_scipy_projections(samples):
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(200, 3)) * [1, 10, 0.1], rng.normal(0.3, 1, size=(150, 3)) * [1, 10, 0.1]
    w, v = rng.exponential(size=200), rng.exponential(size=150)
    loss = SlicedWasserstein(X, Y, target_weights=v, n_projections=12, seed=4)
    mu, sd = Y.mean(0), Y.std(0)
    ref = np.mean([scipy.stats.wasserstein_distance((X - mu) / sd @ d, (Y - mu) / sd @ d, w, v)
                   for d in loss.directions.numpy()])
    assert float(loss(torch.tensor(w))) == pytest.approx(ref, rel=1e-12)       # the fused CPU kernel
    loss.fused = False                                                          # torch, chunks of directions
    assert float(loss(torch.tensor(w))) == pytest.approx(ref, rel=1e-12)
    assert float(loss(torch.tensor(w), chunk=5)) == pytest.approx(ref, rel=1e-12)


def test_fused_sliced_wasserstein_equals_the_torch_path():
    """The fused numba sums (fastrsa.swdkernel) give torch's loss and gradient: rows of weights, bootstrap
    rows of target weights, an unweighted target (passed to the kernel as one constant), a target whose
    weights take a gradient too, ties (integer observables), and the int32 sort order."""
    rng = np.random.default_rng(11)
    X = np.column_stack([rng.poisson(6, 300), rng.integers(0, 3, 300)]).astype(float)
    Y = np.column_stack([rng.poisson(7, 250), rng.integers(0, 3, 250)]).astype(float)
    loss = SlicedWasserstein(X, Y, n_projections=9, seed=2)
    assert loss.order.dtype == torch.int32
    assert (loss.du == 0).float().mean() > 0.5                  # events with equal observables tie
    W5 = torch.tensor(rng.exponential(size=(5, 300)), requires_grad=True)
    Q5 = torch.tensor(rng.poisson(1.0, size=(5, 250)).astype(float), requires_grad=True)
    Q1 = Q5.detach().clone()
    Q1[0] = 1.0                                                 # only the first row constant: not one constant
    mix = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0])
    for W, Q, q, inputs in ((W5, Q5, Q5.detach(), (W5,)), (W5, Q5, None, (W5,)), (W5, Q5, Q5, (W5, Q5)),
                            (W5, Q1, Q1, (W5,)),
                            (W5[:1], Q5[:1], Q5[:1].detach(), (W5,)), (W5[0], Q5[0], None, (W5,)),
                            (W5[:1], Q5[:1], Q5[:1], (W5, Q5))):
        got = {}
        for fused in (True, False):
            loss.fused = fused
            val = loss(W, q)
            got[fused] = (val.detach(), *torch.autograd.grad((val * mix[:len(W) if W.ndim == 2 else 1]).sum(),
                                                             inputs))
        for a, b in zip(got[True], got[False]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-16)
        with torch.no_grad():
            loss.fused = True
            torch.testing.assert_close(loss(W, q), got[False][0], rtol=1e-12, atol=0)
    # The same sample on both sides: the cumulative mass returns to exactly 0 after every pair of tied events,
    # with a gap after it: sign(0) = 0 (torch's gradient of |c| at 0) is then what the gradient holds.
    # (The merged sweep: the sweep over runs may take a one-sided derivative there, see
    # test_swd_sweep_over_runs_equals_the_merged_sweep.)
    same = SlicedWasserstein(X, X, n_projections=9, seed=2, runs=False)
    W = torch.ones(300, dtype=torch.float64, requires_grad=True)
    grads = []
    for fused in (True, False):
        same.fused = fused
        grads.append(torch.autograd.grad(same(W), W)[0])
    assert float(same(W.detach())) < 1e-15
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-16)


def numpy_chi2(x, y, w, v, edges, xi=None, yi=None):
    """Independent reference: np.histogram per sample, sums over events for the normalization."""
    xw = w if xi is None else w[xi]
    yw = v if yi is None else v[yi]
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    s, _ = np.histogram(x, full, weights=xw)
    s2, _ = np.histogram(x, full, weights=xw ** 2)
    t, _ = np.histogram(y, full, weights=yw)
    t2, _ = np.histogram(y, full, weights=yw ** 2)
    S, T = w.sum(), v.sum()
    var = s2 / S ** 2 + t2 / T ** 2
    keep = var > 0
    return np.sum((s[keep] / S - t[keep] / T) ** 2 / var[keep])


def test_chi2_matches_numpy(samples):
    x, y, w, v = samples
    edges = np.linspace(-2, 2, 9)
    loss = PseudoChi2(x, y, bins=edges, target_weights=v)
    assert float(loss(torch.tensor(w))) == pytest.approx(numpy_chi2(x, y, w, v, edges), rel=1e-12)


def test_chi2_hadron_level_and_integer_bins():
    rng = np.random.default_rng(3)
    n_ev = 60
    counts = rng.integers(1, 5, size=n_ev)
    idx = np.repeat(np.arange(n_ev), counts)
    x = rng.poisson(4, size=len(idx)).astype(float)
    y = rng.poisson(5, size=90).astype(float)
    w = rng.exponential(size=n_ev)
    edges = default_bins(y, x)
    assert np.all(np.diff(edges) == 1) and edges[0] % 1 == 0.5         # unit bins for integers
    loss = PseudoChi2(x, y, sim_index=idx, n_sim_events=n_ev)
    assert float(loss(torch.tensor(w))) == pytest.approx(numpy_chi2(x, y, w, np.ones(90), edges, xi=idx), rel=1e-12)


@pytest.mark.parametrize("kind", ["w1", "swd", "chi2"])
def test_batched_rows_equal_single_rows(samples, kind):
    x, y, w, v = samples
    loss = {"w1": lambda: Wasserstein1D(x, y), "chi2": lambda: PseudoChi2(x, y),
            "swd": lambda: SlicedWasserstein(np.stack([x, x ** 2], 1), np.stack([y, y ** 2], 1), n_projections=8)}[kind]()
    W = torch.tensor(np.stack([w, w[::-1], np.ones_like(w)]))
    batched = loss(W)
    assert batched.shape == (3,)
    for k in range(3):
        assert float(batched[k]) == pytest.approx(float(loss(W[k])), rel=1e-13)


def test_bootstrap_counts_are_copies_of_events():
    """A bootstrap replica given as multiplicities k (weights k w, counts=k) has the loss of the replica
    written out event by event (np.repeat) with weights w: the pseudo-chi2's variances count a k-fold event
    k times; so do the data chi2's; the other losses have no variance."""
    from fastrsa.fit.measured import DataTarget, MeasuredChi2
    from fastrsa.measurements import Measurement
    rng = np.random.default_rng(13)
    x, y = rng.poisson(5, 300).astype(float), rng.poisson(6, 200).astype(float)
    w, v = rng.exponential(size=300), rng.exponential(size=200)
    k, kt = rng.poisson(1.0, 300), rng.poisson(1.0, 200)
    tw = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    xs = np.repeat(x, k)
    # (swd standardizes by the target's values, so its target is not resampled here)
    for make, kq in ((lambda a, b, q: PseudoChi2(a, b, bins=np.arange(0.5, 12), target_weights=q), kt),
                     (lambda a, b, q: Wasserstein1D(a, b, target_weights=q), kt),
                     (lambda a, b, q: SlicedWasserstein(np.stack([a, a ** 2], 1), np.stack([b, b ** 2], 1),
                                                        target_weights=q, n_projections=5), np.ones(200, int))):
        replica = make(x, y, v)(tw(k * w), tw(kq * v), counts=(tw(k), tw(kq)))
        copies = make(xs, np.repeat(y, kq), np.repeat(v, kq))(tw(np.repeat(w, k)))
        assert float(replica) == pytest.approx(float(copies), rel=1e-12)
    m = Measurement("t/h", np.arange(10) - 0.5, np.arange(10) + 0.5, rng.uniform(0.01, 0.2, 10),
                    np.full(10, 0.01), np.full(10, 0.01))
    for stat in ("fraction", "mean"):
        mm = m if stat == "fraction" else m.select([0])
        one, exp = MeasuredChi2(DataTarget(mm, "x", stat), x), MeasuredChi2(DataTarget(mm, "x", stat), xs)
        p = k * w / np.sum(k * w)
        got = one.prediction(tw(p)[None], tw(k)[None])
        want = exp.prediction(tw(np.repeat(w, k) / np.sum(k * w))[None])
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-18)


def test_pseudo_chi2_gradient_holds_the_variances_constant():
    """The histograms and their variances are gradchecked; the loss's gradient is that of the chi2 with the
    variances held at their values (a constant, see PseudoChi2), which differs from the full derivative."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=40), rng.normal(0.5, 1, size=30)
    loss = PseudoChi2(x, y, bins=[-1, 0, 1])
    w = torch.tensor(rng.exponential(size=(2, 40)) + 0.1, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: loss.histograms(w), (w,))
    s, vs, t, vt = loss.histograms(w)
    g, = torch.autograd.grad(loss(w).sum(), w)
    g_fixed, = torch.autograd.grad(loss.from_histograms(s, vs.detach(), t, vt.detach()).sum(), w, retain_graph=True)
    g_full, = torch.autograd.grad(loss.from_histograms(s, vs, t, vt).sum(), w)
    torch.testing.assert_close(g, g_fixed, rtol=1e-12, atol=0)
    assert not torch.allclose(g, g_full, rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", ["w1", "swd", "swd-torch"])
def test_gradcheck_in_weights(kind):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=25), rng.normal(0.5, 1, size=20)
    sw = lambda fused: SlicedWasserstein(np.stack([x, x ** 3], 1), np.stack([y, y ** 3], 1),  # noqa: E731
                                         n_projections=4, fused=fused)
    loss = {"w1": lambda: Wasserstein1D(x, y), "swd": lambda: sw(True), "swd-torch": lambda: sw(False)}[kind]()
    w = torch.tensor(rng.exponential(size=(2, 25)) + 0.1, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: loss(w), (w,), eps=1e-7, atol=1e-6)


def test_forward_does_not_sort(samples, monkeypatch):
    """The sorting depends only on the data: it happens at construction, never per evaluation."""
    x, y, w, v = samples
    losses = [Wasserstein1D(x, y), SlicedWasserstein(np.stack([x, x], 1) + [0, 1], np.stack([y, y ** 2], 1)),
              PseudoChi2(x, y)]

    def forbidden(*a, **k):
        raise AssertionError("sorted during forward")

    for name in ("sort", "argsort"):
        monkeypatch.setattr(torch, name, forbidden)
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for loss in losses:
        loss(torch.tensor(w, requires_grad=True)).backward()


def test_radix_argsort_gives_the_stable_comparison_sort_bit_for_bit():
    """The sliced Wasserstein loss sorts its projections with swdkernel.argsort_rows (a radix sort on the
    values' bits): the order must be torch.sort(stable=True)'s exactly, ties (many here, as for a
    multiplicity), -0.0 beside 0.0, infinities, subnormals, NaNs and negative values included, and the
    sorted values' differences the same (in the rows without inf or NaN). The loss's own order and gaps are compared too."""
    from fastrsa.swdkernel import argsort_rows
    rng = np.random.default_rng(7)
    M = 5000
    x = rng.normal(size=(5, M))
    x[0] = np.round(x[0] * 3)                                   # few distinct values: long runs of ties
    x[1, ::2] = 0.0
    x[1, 1::4] = -0.0                                           # -0.0 and 0.0 tie in a comparison sort
    x[2, :12] = [np.inf, -np.inf, 1e-320, -1e-320, 5e-324, -5e-324, 1e308, -1e308, 3.0, -3.0, 0.0, -0.0]
    x[3] = -np.abs(x[3])                                        # negative values only
    x[4] = 1.0 + rng.integers(0, 3, M) * 2.0 ** -52             # differences in the last bit only
    nans = np.array([0x7FF8000000000001, 0x7FF8000000000000, 0xFFF8000000000000], np.uint64).view(np.float64)
    x[2, 20:23] = nans                                          # NaN payloads and a negative NaN: last, in order
    for dtype, tdtype in ((np.int32, torch.int32), (np.int64, torch.int64)):
        order, srt = argsort_rows(x, dtype)
        ref_srt, ref_order = torch.sort(torch.from_numpy(x), dim=1, stable=True)
        assert order.dtype == dtype
        assert np.array_equal(order, ref_order.numpy())
        assert np.array_equal(srt, ref_srt.numpy(), equal_nan=True)      # (-0.0 == 0.0)
        assert np.array_equal(np.diff(srt[[0, 1, 3, 4]], axis=1), np.diff(ref_srt.numpy()[[0, 1, 3, 4]], axis=1))
        o2, g2 = np.empty_like(order), np.empty((5, M - 1))      # into given arrays, with the gaps from one pass
        assert argsort_rows(x, order=o2, gaps=g2)[1] is g2
        assert np.array_equal(o2, order) and np.array_equal(g2, np.diff(srt, axis=1), equal_nan=True)
    y = rng.normal(size=(300, 2))
    loss = SlicedWasserstein(y[:150], y[150:], n_projections=6)
    proj = (torch.from_numpy(loss._u) @ loss.directions.T).T
    ref_srt, ref_order = torch.sort(proj, dim=1, stable=True)
    assert torch.equal(loss.order.long(), ref_order)
    assert torch.equal(loss.du, torch.diff(ref_srt, dim=1))


def test_bad_values_are_refused(samples):
    x, y, _, _ = samples
    with pytest.raises(ParameterError, match="sim_values: holds NaN"):
        Wasserstein1D(np.r_[x, np.nan], y)
    with pytest.raises(ParameterError, match="constant in the target"):
        SlicedWasserstein(np.stack([x, x], 1), np.stack([y, np.ones_like(y)], 1))
    with pytest.raises(ParameterError, match="target_weights: last dimension"):
        Wasserstein1D(x, y)(torch.ones(len(x)), torch.ones(3))


@pytest.mark.parametrize("kind", ["w1", "swd", "chi2"])
def test_target_weights_huge_or_bad(samples, kind):
    """Target weights of 1e308 (their sum and squares overflow) give the loss of unit weights; NaN, negative
    and all-zero weights are refused with the field named (issue 15)."""
    x, y, ws, wt = samples
    make = {"w1": lambda q: Wasserstein1D(x, y, target_weights=q),
            "swd": lambda q: SlicedWasserstein(np.stack([x, x ** 2], 1), np.stack([y, y ** 2], 1), target_weights=q),
            "chi2": lambda q: PseudoChi2(x, y, default_bins(x, y), target_weights=q)}[kind]
    w = torch.as_tensor(ws)
    plain = make(np.ones(len(y)))(w)
    huge = make(np.full(len(y), 1e308))(w)
    assert torch.isfinite(huge) and torch.allclose(huge, plain, rtol=1e-12)
    assert torch.allclose(make(None)(w, torch.full((len(y),), 1e308, dtype=torch.float64)), plain, rtol=1e-12)
    for bad, msg in ((np.full(len(y), np.nan), "NaN"), (-np.ones(len(y)), "negative"),
                     (np.zeros(len(y)), "all zero"), (np.ones(3), "shape")):
        with pytest.raises(ParameterError, match=f"target_weights.*{msg}"):
            make(bad)


def test_sliced_wasserstein_chunks_bound_memory_and_change_nothing(samples, monkeypatch):
    """In torch (CUDA, or fused=False) the directions are taken in chunks of at most CHUNK_ELEMENTS [rows x directions x events] (a batched
    Hessian at 2e6 events once ran out of 24 GB); any chunking gives the same loss and gradient."""
    import fastrsa.losses as L
    x, y, w, v = samples
    loss = SlicedWasserstein(np.stack([x, x ** 2], 1), np.stack([y, y ** 2], 1), target_weights=v, n_projections=16,
                             fused=False)
    ws = torch.tensor(np.stack([w, w[::-1]]), requires_grad=True)
    ref = loss(ws)
    g_ref, = torch.autograd.grad(ref.sum(), ws)
    monkeypatch.setattr(L, "CHUNK_ELEMENTS", 2 * (len(x) + len(y)))       # one direction per chunk for 2 rows
    small = loss(ws)
    g_small, = torch.autograd.grad(small.sum(), ws)
    torch.testing.assert_close(small, ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(g_small, g_ref, rtol=1e-12, atol=1e-15)


def test_swd_sweep_over_runs_equals_the_merged_sweep():
    """With an unweighted target the fit's sweep folds each run of target events between two simulated ones
    into one step where the cumulative mass keeps its sign, and sums event by event where it reaches or
    crosses 0 (swdkernel._sums_and_grad_runs): the same loss and gradient as the merged sweep to rounding, for
    target-heavy, simulation-heavy and one-event samples, ties, rows with different constants, and a sample
    compared with itself (the cumulative mass returns to exactly 0: a kink, where the two sweeps may take different
    derivatives, each a subgradient of the convex sum). Both kinds of run occur."""
    from fastrsa.swdkernel import argsort_rows, swd_mean, sweep_runs
    rng = np.random.default_rng(3)
    cases = [(300, 250, False), (40, 600, False), (600, 40, False), (300, 250, True), (1, 30, False), (30, 1, False)]
    for G, NT, ties in cases + [(300, 300, "same")]:
        x = rng.normal(size=(G + NT, 3))
        if ties == "same":
            x[G:] = x[:G] = np.round(x[:G] * 2)
        elif ties:
            x = np.round(x * 2)
        order, srt = argsort_rows(rng.normal(size=(7, 3)) @ x.T)
        du = np.diff(srt, axis=1)
        runs = sweep_runs(order, du, G)
        assert np.all(runs[1] >= 0) and runs[1].sum(1).tolist() == (NT - runs[4]).tolist()
        mass = np.full((1, G), 1.0 / G) if ties == "same" else rng.exponential(size=(3, G))
        mass /= mass.sum(1, keepdims=True)
        tm = -np.array([[1.0], [0.5], [2.0]])[:len(mass)] / NT
        want_l, want_g = swd_mean(mass, tm, order, du, True)
        got_l, got_g = swd_mean(mass, tm, order, du, True, runs)
        if ties == "same":          # S >= 0 = S(mass) everywhere: each gradient g must satisfy S(m + h) >= g . h
            assert want_l[0] < 1e-13 and got_l[0] < 1e-13
            for _ in range(200):
                h = rng.normal(size=(1, G)) * 1e-3
                lh = swd_mean(mass + h, tm, order, du, False)[0][0]
                assert lh >= float(got_g[0] @ h[0]) - 1e-13 and lh >= float(want_g[0] @ h[0]) - 1e-13
            continue
        np.testing.assert_allclose(got_l, want_l, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(got_g, want_g, rtol=1e-12, atol=1e-13 * np.abs(want_g).max())
        if (G, NT) == (300, 250) and not ties:      # both kinds of run: c keeps its sign, and c changes sign
            c = np.cumsum(np.where(order[0] < G, mass[0][np.minimum(order[0], G - 1)], tm[0, 0]))
            k = np.flatnonzero(order[0] < G)
            ends = np.append(k[1:] - 1, len(c) - 1)
            flips = np.sign(c[k]) != np.sign(c[ends])
            assert flips.sum() >= 5 and (~flips & (runs[1][0] > 0)).sum() >= 50
    # The loss module takes this path from a fit's second step on (an unweighted target, a gradient to take):
    # an order's first sweep goes event by event (with --redraw every order is swept once), and runs made for
    # one order are never used with another (resample, load_state_dict).
    X, Y = rng.normal(size=(200, 2)), rng.normal(0.2, 1, size=(150, 2))
    loss, torch_loss = SlicedWasserstein(X, Y, n_projections=6), SlicedWasserstein(X, Y, n_projections=6, fused=False)
    W = torch.tensor(rng.exponential(size=200), requires_grad=True)

    def check(made):
        torch.testing.assert_close(torch.autograd.grad(loss(W), W)[0], torch.autograd.grad(torch_loss(W), W)[0],
                                   rtol=1e-12, atol=1e-16)
        assert (loss._runs is not None) == made
    check(False)
    check(True)
    assert loss._runs[0].shape == (6, 200)
    loss.resample()
    torch_loss.resample()
    check(False)
    check(True)
    other = SlicedWasserstein(X, Y, n_projections=6, seed=9)
    loss.load_state_dict(other.state_dict())        # the same buffers, new contents
    torch_loss.load_state_dict(other.state_dict())
    check(False)
    check(True)


def test_swd_rows_swept_together_equal_each_row_alone():
    """Several rows (a Hessian's points, bootstrap replicas) go through one sweep per direction, 8 at a time
    (swdkernel._sums_and_grad_rows): the same loss and gradient as each row swept alone, to the bit, for a
    weighted target (bootstrap counts), one constant per row, a block of rows that is not full (11 = 8 + 3),
    ties, and every event's gradient (no target part)."""
    from fastrsa.swdkernel import argsort_rows, swd_mean
    rng = np.random.default_rng(8)
    G, NT = 300, 250
    x = np.round(rng.normal(size=(G + NT, 3)) * 2)
    order, srt = argsort_rows(rng.normal(size=(7, 3)) @ x.T)
    du = np.diff(srt, axis=1)
    mass = rng.exponential(size=(11, G)) * rng.poisson(1.0, size=(11, G))
    mass /= mass.sum(1, keepdims=True)
    tw = rng.poisson(1.0, size=(11, NT)).astype(float)
    tw = -tw / tw.sum(1, keepdims=True)
    tc = -rng.uniform(0.5, 2.0, size=(11, 1)) / NT
    every = np.concatenate([mass, tw], 1)
    for m, t in ((mass, tw), (mass, tc), (mass[:2], tw[:2]), (every, None)):
        got_l, got_g = swd_mean(m, t, order, du, True)
        for r in range(len(m)):
            want_l, want_g = swd_mean(m[r:r + 1], None if t is None else t[r:r + 1], order, du, True)
            assert got_l[r] == want_l[0] and np.array_equal(got_g[r], want_g[0])
        assert np.array_equal(swd_mean(m, t, order, du, False)[0], got_l)


def test_the_loss_numbers_events_by_locality():
    """SlicedWasserstein numbers the events by their Morton order in observable space (swdkernel.locality_order),
    so that the sweeps touch fewer cache lines: a permutation that puts neighbours in space next to each
    other (consecutive events 5x closer than in a random numbering), and a loss that does not depend on it:
    the same value and gradient, to rounding, as the events in their given order."""
    from fastrsa.swdkernel import locality_order
    rng = np.random.default_rng(4)
    u = rng.normal(size=(4000, 3))
    p = locality_order(u)
    assert np.array_equal(np.sort(p), np.arange(4000))
    step = lambda v: np.linalg.norm(np.diff(v, axis=0), axis=1).mean()      # noqa: E731
    assert step(u[p]) < 0.25 * step(u)
    uc = np.column_stack([u, np.ones(4000)])        # a constant column: one rank, no index order in the code
    assert step(u[locality_order(uc)]) < 0.2 * step(u)
    assert np.array_equal(locality_order(np.array([3.0, 1.0, 2.0, 1.0])), [1, 3, 2, 0])     # 1 D: a stable sort
    X, Y = rng.normal(size=(200, 3)), rng.normal(0.2, 1, size=(150, 3))
    loss = SlicedWasserstein(X, Y, n_projections=6, seed=1)
    assert not torch.equal(loss.sim_perm, torch.arange(200))
    plain = SlicedWasserstein(X, Y, n_projections=6, seed=1, fused=False, locality=False)      # the given order
    assert torch.equal(plain.sim_perm, torch.arange(200)) and torch.equal(plain.target_perm, torch.arange(150))
    W, Q = (torch.tensor(rng.exponential(size=n), requires_grad=True) for n in (200, 150))
    for fused in (True, False):
        loss.fused = fused
        a, b = loss(W, Q), plain(W, Q)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        for ga, gb in zip(torch.autograd.grad(a, (W, Q)), torch.autograd.grad(b, (W, Q))):
            torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-15)
    # A loaded state_dict brings its numbering with its order: resampling keeps the two together.
    loss.load_state_dict(plain.state_dict())
    for m in (loss, plain):
        m.resample()
    torch.testing.assert_close(loss(W, Q), plain(W, Q), rtol=1e-12, atol=0)
