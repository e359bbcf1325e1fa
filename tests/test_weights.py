import math
import warnings

import numpy as np
import pytest
import torch
from numba import njit, prange

import fastrsa
from fastrsa import DatasetError, ParameterError
from fastrsa.hadronization.batch import TrialBatch
from fastrsa.hadronization.lund import log_f_and_grad
from fastrsa.hadronization.reference import dataset_weights
from fastrsa.params import BaseParams

POINTS = [(0.68, 0.98, 0.335), (0.4, 0.6, 0.3), (1.1, 1.5, 0.4), (0.72, 0.88, 0.335)]


def _lw(ds, theta, device):
    # The CUDA simulator runs every GPU thread in Python: give it a dozen events, not hundreds.
    batch = _small_batch(ds, 12, device) if device.name == "cudasim" else ds.to_torch(device.torch_device)
    lw = fastrsa.lund_log_weights(batch, torch.tensor(theta, dtype=torch.float64, device=device.torch_device),
                                  backend=device.backend)
    return lw.cpu().numpy()


def test_against_float64_reference(string_ds, device):
    n = 12 if device.name == "cudasim" else 400
    for theta in POINTS:
        got = np.exp(_lw(string_ds, theta, device))[:n]
        ref = dataset_weights(string_ds, theta, n=n)
        np.testing.assert_allclose(got, ref, rtol=1e-10)
    # The base point gives weight 1 exactly.
    assert np.all(_lw(string_ds, POINTS[-1], device) == 0.0)


@pytest.mark.parametrize("fixture", ["insitu_string", "insitu_ee"])
def test_against_pythia(fixture, request, device):
    ds, points, insitu, kv = request.getfixturevalue(fixture)
    got = np.exp(_lw(ds, points, device))
    n = got.shape[1]        # every event (the first dozen under the CUDA simulator)
    np.testing.assert_allclose(got, kv[:, :n], rtol=1e-10)       # Pythia's post-hoc weights
    np.testing.assert_allclose(got, insitu[:, :n], rtol=1e-10)   # Pythia's in-situ weights


def test_ee_has_all_flavour_classes(insitu_ee):
    ds = insitu_ee[0]
    fv = ds.flat(groups=("trials",))
    ids = np.abs(np.concatenate([fv["id_old"], fv["id_new"]]))
    assert {3, 4, 5} <= set(ids.tolist()) and np.any(ids > 1000)


def test_k_points_in_one_pass(string_ds, device):
    batch = _small_batch(string_ds, 4 if device.name == "cudasim" else 400, device)
    th = torch.tensor(POINTS, dtype=torch.float64, device=device.torch_device)
    many = fastrsa.lund_log_weights(batch, th, backend=device.backend)
    assert many.shape == (len(POINTS), len(batch))
    for k in range(len(POINTS)):
        one = fastrsa.lund_log_weights(batch, th[k], backend=device.backend)
        torch.testing.assert_close(many[k], one, rtol=0, atol=0)


def _small_batch(ds, n, device):
    fv = ds.flat(groups=("trials", "breaks"))
    to, bo = fv.offsets["trials"][:n + 1], fv.offsets["breaks"][:n + 1]
    return TrialBatch.from_arrays(ds.base, to, fv["z"][:to[-1]], fv["fprel"][:to[-1]], fv["mt2"][:to[-1]],
                                  fv["id_old"][:to[-1]], fv["id_new"][:to[-1]], bo, fv["pt2"][:bo[-1]],
                                  device=device.torch_device)


@pytest.mark.parametrize("theta", [(0.6, 0.9, 0.3), (0.01, 0.9, 0.3), (1.003, 0.7, 0.35), (1.5, 0.3, 0.5)])
def test_gradcheck(insitu_ee, device, theta):
    # e+e- records cover every flavour; theta runs through Pythia's special cases (a ~ 0, a ~ c).
    batch = _small_batch(insitu_ee[0], 1 if device.name == "cudasim" else 30, device)   # one event: 32 lanes
    th = torch.tensor(theta, dtype=torch.float64, device=device.torch_device, requires_grad=True)
    f = lambda t: fastrsa.lund_log_weights(batch, t, backend=device.backend)  # noqa: E731
    assert torch.autograd.gradcheck(f, (th,), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_gradient_matches_pythia_finite_differences(insitu_string):
    import pythia8mc as p8
    ds = insitu_string[0]
    base = ds.base
    kv = p8.KinematicVariations(base.a, base.b, base.r_fact_c, base.r_fact_b, base.sigma, base.z_head)
    fv = ds.flat(groups=("trials", "breaks"))
    theta = torch.tensor([0.6, 1.0, 0.31], dtype=torch.float64, requires_grad=True)
    batch = ds.to_torch()
    n = 15
    jac = torch.autograd.functional.jacobian(lambda t: fastrsa.lund_log_weights(batch, t)[:n], theta)
    to, bo = fv.offsets["trials"], fv.offsets["breaks"]

    def pythia_logw(i, t):
        s, e = to[i], to[i + 1]
        zi = np.stack([fv["id_old"][s:e], fv["id_new"][s:e]], 1).ravel().tolist()
        zd = np.stack([fv["mt2"][s:e], fv["z"][s:e], fv["fprel"][s:e]], 1).ravel().tolist()
        pt = np.stack([fv["pt2"][bo[i]:bo[i + 1]], fv["pt_mult"][bo[i]:bo[i + 1]]], 1).ravel().tolist()
        return math.log(kv.weight(t[0], t[1], base.r_fact_c, base.r_fact_b, t[2], zi, zd, pt))

    h = 1e-5
    for i in range(n):
        for j in range(3):
            tp, tm = [0.6, 1.0, 0.31], [0.6, 1.0, 0.31]
            tp[j] += h
            tm[j] -= h
            fd = (pythia_logw(i, tp) - pythia_logw(i, tm)) / (2 * h)
            assert jac[i, j].item() == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_lund_special_cases_against_finite_differences():
    from fastrsa.hadronization.lund import log_f_and_grad, zmax_and_grad
    cases = [(0.01, 0.3, 1.0), (0.01, 2.0, 1.0), (1.004, 0.5, 1.0), (0.7, 0.5, 1.0), (0.5, 150.0, 0.2),
             (0.97, 0.8, 1.97), (0.5, 200.0, 1.0)]
    for A, B, C in cases:
        zm, *g = zmax_and_grad(A, B, C)
        for j in range(3):
            p, m = [A, B, C], [A, B, C]
            h = 1e-4 * max(1.0, abs(p[j]))      # relative step: B runs up to 200, and zMax cancels
            p[j] += h
            m[j] -= h
            fd = (zmax_and_grad(*p)[0] - zmax_and_grad(*m)[0]) / (2 * h)
            assert g[j] == pytest.approx(fd, rel=1e-4, abs=1e-9), (A, B, C, j)
        for z in (0.05, 0.5, 0.93):
            lf, *g = log_f_and_grad(A, B, C, z, math.log(z), math.log1p(-z))
            for j in range(3):
                p, m = [A, B, C], [A, B, C]
                h = 1e-6 * max(1.0, abs(p[j]))
                p[j] += h
                m[j] -= h
                fd = (log_f_and_grad(*p, z, math.log(z), math.log1p(-z))[0]
                      - log_f_and_grad(*m, z, math.log(z), math.log1p(-z))[0]) / (2 * h)
                assert g[j] == pytest.approx(fd, rel=1e-5, abs=1e-6), (A, B, C, z, j)


def test_module_and_optimizer_step(string_ds):
    batch = string_ds.to_torch()
    model = fastrsa.LundReweighter(0.6, 1.0, 0.3, base=string_ds.base)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss = -model(batch).mean()
    loss.backward()
    assert torch.isfinite(model.theta.grad).all() and model.theta.grad.abs().sum() > 0
    before = model.theta.detach().clone()
    opt.step()
    assert not torch.equal(before, model.theta.detach())
    with pytest.raises(DatasetError, match="base parameters differ"):
        fastrsa.LundReweighter(0.6, 1.0, 0.3, base=BaseParams(a=0.5))(batch)


def test_diagnostics_and_warnings(string_ds):
    batch = string_ds.to_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = fastrsa.diagnostics(batch, (0.72, 0.88, 0.335))[0]
    assert d.mean_weight == 1.0 and d.n_eff_frac == pytest.approx(1.0, rel=1e-14) and d.capped_trials == 0
    with pytest.warns(RuntimeWarning, match="N_eff/N"):
        far = fastrsa.diagnostics(batch, (0.05, 2.0, 0.2))[0]     # the far corner of the model (b <= 2)
    assert far.n_eff_frac < 0.1
    with pytest.warns(RuntimeWarning, match="capped at zHead"):
        capped = fastrsa.diagnostics(batch, (0.0, 0.2, 0.335))[0]
    assert capped.capped_trials > 0
    # N_eff from log-weights equals the direct formula where that is safe.
    lw = fastrsa.lund_log_weights(batch, torch.tensor([0.68, 0.98, 0.335], dtype=torch.float64))
    w = torch.exp(lw)
    mean, err, neff = fastrsa.summarize_log_weights(lw)
    assert neff == pytest.approx(float(w.sum() ** 2 / (w ** 2).sum()), rel=1e-12)
    assert mean == pytest.approx(float(w.mean()), rel=1e-12)


@pytest.mark.parametrize("theta,msg", [((-0.1, 0.9, 0.3), "a = -0.1"), ((0.7, 0.0, 0.3), "b = 0.0"),
                                       ((0.7, 0.9, -0.3), "sigma = -0.3"), ((float("nan"), 0.9, 0.3), "NaN"),
                                       ((0.7, float("inf"), 0.3), "inf")])
def test_bad_theta(string_ds, theta, msg):
    batch = string_ds.to_torch()
    with pytest.raises(ParameterError, match=msg):
        fastrsa.lund_log_weights(batch, torch.tensor(theta, dtype=torch.float64))


def test_bad_theta_types(string_ds):
    batch = string_ds.to_torch()
    with pytest.raises(ParameterError, match="dtype"):
        fastrsa.lund_log_weights(batch, torch.tensor([1, 1, 1]))
    for half in (torch.float16, torch.bfloat16):      # would silently move the point (0.68 -> 0.6802)
        with pytest.raises(ParameterError, match=f"dtype {half} cannot hold the point exactly"):
            fastrsa.lund_log_weights(batch, torch.tensor([0.68, 0.98, 0.335], dtype=half))
    with pytest.raises(ParameterError, match="shape"):
        fastrsa.lund_log_weights(batch, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ParameterError, match="torch tensor"):
        fastrsa.lund_log_weights(batch, [0.7, 0.9, 0.3])
    with pytest.raises(ParameterError, match="TrialBatch"):
        fastrsa.lund_log_weights(string_ds, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("column,value,msg", [("z", 1.2, "z: trial"), ("z", float("nan"), "z: trial"),
                                              ("fprel", 0.0, "fprel"), ("mt2", float("nan"), "mt2")])
def test_bad_records(string_ds, column, value, msg):
    fv = string_ds.flat(groups=("trials", "breaks"))
    arrs = {k: np.array(fv[k]) for k in ("z", "fprel", "mt2")}
    arrs[column][5] = value
    with pytest.raises(DatasetError, match=msg):
        TrialBatch.from_arrays(string_ds.base, fv.offsets["trials"], arrs["z"], arrs["fprel"], arrs["mt2"],
                               fv["id_old"], fv["id_new"], fv.offsets["breaks"], fv["pt2"])


def test_offsets_and_magnitudes_are_checked_before_any_kernel(string_ds):
    """A break offset past the end used to crash the kernel (segfault), decreasing ones gave n_breaks < 0,
    and one trial with mt2 = 1e300 made a NaN weight: each is now one error naming the event."""
    fv = string_ds.flat(groups=("trials", "breaks"))
    args = lambda **o: {**dict(trial_offsets=fv.offsets["trials"], z=fv["z"], fprel=fv["fprel"], mt2=fv["mt2"],  # noqa: E731
                               id_old=fv["id_old"], id_new=fv["id_new"], break_offsets=fv.offsets["breaks"],
                               pt2=fv["pt2"]), **o}
    past = fv.offsets["breaks"].copy()
    past[-1] += 1000
    with pytest.raises(DatasetError, match=r"break offsets \(pt2\): offsets must .* end at the number of values"):
        TrialBatch.from_arrays(string_ds.base, **args(break_offsets=past))
    down = fv.offsets["breaks"].copy()
    down[5] = down[7] + 3
    with pytest.raises(DatasetError, match="non-decreasing"):
        TrialBatch.from_arrays(string_ds.base, **args(break_offsets=down))
    mt2 = np.array(fv["mt2"])
    t = int(fv.offsets["trials"][3]) + 2                 # a trial of event 3
    mt2[t] = 1e300
    with pytest.raises(DatasetError, match=rf"mt2: trial {t} \(event 3\) has mt2 = 1e\+300"):
        TrialBatch.from_arrays(string_ds.base, **args(mt2=mt2))


@njit(parallel=True)
def _base_terms(z, mt2, fprel, cls, table, a, b, log_zhead, out_lfb, out_lfB):
    """The reference's per-trial base terms: lfb = log f_B(z) and lfB = log F_B = lfb - log(fPrel zHead)."""
    for t in prange(z.shape[0]):
        c = cls[t]
        m = abs(mt2[t])         # log f_B(z) by the per-trial code, zMax recomputed for every trial
        lf, _, _, _ = log_f_and_grad(a + table[c, 0], b * m, table[c, 1] + table[c, 2] * b, z[t], math.log(z[t]),
                                     math.log1p(-z[t]))
        out_lfb[t] = lf
        out_lfB[t] = lf - math.log(fprel[t]) - log_zhead


def _per_trial_log_weights(ds, theta, n_events):
    """The weight as it was computed before the compact layout: per trial, log f_B(z) from the stored base
    terms (_base_terms), log f at theta by log_f_and_grad, zMax recomputed for every trial. Compiled
    by numba like the kernels (the same functions in Python may round differently in the last bit)."""
    from fastrsa.hadronization import lund
    from fastrsa.hadronization.flavours import flavour_class, flavour_table
    fv = ds.flat(groups=("trials", "breaks"))
    off = np.asarray(fv.offsets["trials"], np.int64)
    z, mt2, fprel = (np.array(fv[k]) for k in ("z", "mt2", "fprel"))
    c = flavour_class(np.asarray(fv["id_old"]), np.asarray(fv["id_new"]))
    table, b = flavour_table(ds.base), ds.base
    lfb, lfB = np.empty_like(z), np.empty_like(z)
    _base_terms(z, mt2, fprel, c, table, b.a, b.b, math.log(b.z_head), lfb, lfB)

    @njit
    def loop(a, bb, log_zhead, n):
        out = np.zeros(n)
        for i in range(n):
            for t in range(off[i], off[i + 1]):
                m = abs(mt2[t])
                a_off, c0, kc = table[c[t], 0], table[c[t], 1], table[c[t], 2]
                lf, fA, fB, fC = lund.log_f_and_grad(a + a_off, bb * m, c0 + kc * bb, z[t], math.log(z[t]),
                                                     math.log1p(-z[t]))
                q = -1.0 if mt2[t] > 0 else 1.0 / math.expm1(-lfB[t])
                out[i] += lund.trial_log_ratio(lf - lfb[t], fA, fB * m + fC * kc, q, log_zhead)[0]
        return out
    return loop(theta[0], theta[1], math.log(b.z_head), n_events)


@pytest.mark.parametrize("fixture", ["string_ds", "insitu_ee"])
def test_compact_layout_equals_per_trial_evaluation(fixture, request):
    """The kernels recompute log f_B(z) and zMax once per z sampling from the compact layout (docs/weights.md):
    the z part of every event's log-weight equals the per-trial evaluation with stored base terms to rounding
    (the compiler may contract multiply-adds differently in the two loops: 1e-13 absolute over ~300 trials),
    and at the base point it is exactly 0."""
    ds = request.getfixturevalue(fixture)
    ds = ds if hasattr(ds, "to_torch") else ds[0]
    batch = ds.to_torch()
    n = 25
    for theta in ((0.4, 0.6), (1.1, 1.5), (0.05, 2.0)):
        lw = fastrsa.lund_log_weights(batch, torch.tensor([*theta, ds.base.sigma], dtype=torch.float64))[:n]
        np.testing.assert_allclose(lw.numpy(), _per_trial_log_weights(ds, theta, n), rtol=0, atol=1e-13)
    assert np.all(fastrsa.lund_log_weights(batch, torch.tensor(ds.base.theta, dtype=torch.float64)).numpy() == 0)


def test_z_samplings_group_trials_and_stay_exact_when_the_grouping_assumption_fails(string_ds):
    """Real records: one z sampling per accepted trial (so the per-hadron part costs < 1 byte per trial and a
    trial 20.x bytes). Records whose mT2 changes inside a sampling (not Pythia's, but possible input) are
    grouped finer and still weighted exactly."""
    batch = string_ds.to_torch()
    fv = string_ds.flat(groups=("trials", "breaks"))
    assert batch.h_m.numel() == int((np.asarray(fv["mt2"]) > 0).sum())
    assert batch.nbytes / batch.n_trials <= 24
    mt2 = np.array(fv["mt2"])
    off = fv.offsets["trials"]
    rng = np.random.default_rng(3)
    mt2 *= rng.uniform(0.9, 1.1, len(mt2))          # every trial its own mT2: no two trials share a sampling
    args = dict(trial_offsets=off, z=fv["z"], fprel=fv["fprel"], id_old=fv["id_old"], id_new=fv["id_new"],
                break_offsets=fv.offsets["breaks"], pt2=fv["pt2"])
    odd = TrialBatch.from_arrays(string_ds.base, mt2=mt2, **args)
    assert odd.h_m.numel() == len(mt2)
    from fastrsa.hadronization.reference import event_weight
    theta = (0.5, 1.2, 0.3)
    lw = fastrsa.lund_log_weights(odd, torch.tensor(theta, dtype=torch.float64)).numpy()
    for i in range(20):
        t0, t1 = off[i], off[i + 1]
        b0, b1 = fv.offsets["breaks"][i], fv.offsets["breaks"][i + 1]
        ref = event_weight(theta, string_ds.base, fv["z"][t0:t1], fv["fprel"][t0:t1], mt2[t0:t1],
                           fv["id_old"][t0:t1], fv["id_new"][t0:t1], fv["pt2"][b0:b1])
        assert math.exp(lw[i]) == pytest.approx(ref, rel=1e-10)


def test_trials_clamped_at_the_base_stay_exact(string_ds, device):
    """Pythia clamps log f at -EXPMAX; both kernels check the base point's clamp only in the z samplings
    flagged on load (h_base[:, 4]: some trial's log f_B within 1 of the clamp). On Pythia's records a
    clamped trial has F_B ~ e^-50 and its ratio is 1 to double precision, so here fPrel makes F_B = 0.05 for
    every trial whose log f_B is below -EXPMAX: its ratio at theta then depends on the clamp (unclamped, d
    would be larger), and the float64 reference must still agree. Fails when the flag is never set or
    never read."""
    from fastrsa.hadronization.lund import EXPMAX
    batch = string_ds.to_torch()
    fv = string_ds.flat(groups=("trials", "breaks"))
    z, h, hb = batch.z.numpy(), batch.hadron.numpy(), batch.h_base.numpy()
    eb = hb[h, 0] + hb[h, 1] / z + hb[h, 2] * np.log(z) + hb[h, 3] * np.log1p(-z)     # log f_B, unclamped
    mt2 = np.asarray(fv["mt2"])
    clamped = (eb < -EXPMAX) & (mt2 < 0)
    assert clamped.sum() > 20
    fprel = np.array(fv["fprel"])
    fprel[clamped] = math.exp(-EXPMAX) / (string_ds.base.z_head * 0.05)
    off = fv.offsets["trials"]
    events = np.unique(np.searchsorted(off, np.flatnonzero(clamped), side="right") - 1)
    events = events[:3] if device.name == "cudasim" else events[:12]    # the simulator runs threads in Python
    events = [[i] for i in events]
    odd = _events_batch(string_ds.base, fv, events, device, fprel=fprel)
    assert 0 < odd.h_base[:, 4].sum() < len(odd.h_base)
    for theta in ((0.68, 0.95, 0.335), (0.4, 0.6, 0.3)):
        _assert_reference(odd, string_ds.base, fv, events, theta, device, fprel=fprel)


def _events_batch(base, fv, groups, device, fprel=None):
    """A batch of FlatView fv's events (trials and breaks) in which event j is the records of the events
    groups[j] one after another (a list of event indices: one, or several joined into one long event);
    fprel replaces the records' own."""
    off, boff = fv.offsets["trials"], fv.offsets["breaks"]
    flat = np.concatenate([np.asarray(g) for g in groups])
    trials = np.concatenate([np.arange(off[i], off[i + 1]) for i in flat])
    breaks = np.concatenate([np.arange(boff[i], boff[i + 1]) for i in flat])
    n_t = [sum(off[i + 1] - off[i] for i in g) for g in groups]
    n_b = [sum(boff[i + 1] - boff[i] for i in g) for g in groups]
    col = {k: np.asarray(fv[k])[trials] for k in ("z", "fprel", "mt2", "id_old", "id_new")}
    if fprel is not None:
        col["fprel"] = np.asarray(fprel)[trials]
    return TrialBatch.from_arrays(base, np.r_[0, np.cumsum(n_t)], col["z"], col["fprel"], col["mt2"],
                                  col["id_old"], col["id_new"], np.r_[0, np.cumsum(n_b)],
                                  np.asarray(fv["pt2"])[breaks], device=device.torch_device)


def _assert_reference(batch, base, fv, groups, theta, device, fprel=None):
    """The batch of _events_batch(base, fv, groups) weighs each of its events as the float64 reference does
    (the product of the reference weights of the events it joins), to 1e-10."""
    from fastrsa.hadronization.reference import event_weight
    off, boff = fv.offsets["trials"], fv.offsets["breaks"]
    fprel = np.asarray(fv["fprel"]) if fprel is None else fprel
    lw = fastrsa.lund_log_weights(batch, torch.tensor(theta, dtype=torch.float64, device=device.torch_device),
                                  backend=device.backend).cpu().numpy()
    for j, g in enumerate(groups):
        ref = 1.0
        for i in g:
            t0, t1, b0, b1 = off[i], off[i + 1], boff[i], boff[i + 1]
            ref *= event_weight(theta, base, fv["z"][t0:t1], fprel[t0:t1], fv["mt2"][t0:t1], fv["id_old"][t0:t1],
                                fv["id_new"][t0:t1], fv["pt2"][b0:b1])
        assert math.exp(lw[j]) == pytest.approx(ref, rel=1e-10), (theta, g)


def test_events_with_many_z_samplings(string_ds, device):
    """The CUDA kernel's lanes compute the shapes of 32 z samplings at a time into shared memory, so an
    event with more samplings takes several chunks, and the warps of one block as many as its busiest: a
    block of events with 1, 2, 3 or more chunks (the longest are real events joined into one) must weigh each
    as the reference does, and exactly 1 at the base. Fails when a chunk is skipped or its shapes are
    overwritten too soon."""
    fv = string_ds.flat(groups=("trials", "breaks"))
    h = string_ds.to_torch().hadron.numpy()
    off = fv.offsets["trials"]
    n_samp = h[off[1:] - 1] + 1 - h[off[:-1]]
    order = np.argsort(n_samp, kind="stable")
    b1, b2, b3 = order[-1], order[-2], order[-3]
    groups = [[order[0]], [b1], [order[1]], [b1, b2], [order[2]], [b1, b2, b3]]
    chunks = [(n_samp[g].sum() + 31) // 32 for g in groups]
    assert chunks[0] == 1 and chunks[1] == 2 and chunks[3] >= 3 and chunks[5] >= 4, chunks
    batch = _events_batch(string_ds.base, fv, groups, device)
    for theta in ((0.68, 0.95, 0.335), (0.4, 0.6, 0.3)):
        _assert_reference(batch, string_ds.base, fv, groups, theta, device)
    th = torch.tensor(POINTS[-1], dtype=torch.float64, device=device.torch_device)
    assert torch.all(fastrsa.lund_log_weights(batch, th, backend=device.backend) == 0.0)


def test_stale_numba_cache_is_dropped_when_the_inlined_math_changes():
    """numba keys the CPU kernels' disk cache on kernels/cpu.py alone; an edit of lund.py or flavmath.py must
    not leave a stale compiled kernel (the digest of those sources sits beside the cache)."""
    from pathlib import Path

    from fastrsa.hadronization.kernels import cpu
    cache = Path(cpu.__file__).parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    fake = cache / "cpu.stale_kernel-1.py311.nbi"
    stamp = cache / "cpu.inlined-sources.sha256"
    fake.write_bytes(b"stale")
    stamp.write_text("digest of other sources")
    cpu._drop_stale_cache()
    assert not fake.exists() and stamp.read_text() != "digest of other sources"
    fake.write_bytes(b"fresh")          # same sources: the cache is kept
    cpu._drop_stale_cache()
    assert fake.exists()
    fake.unlink()


@pytest.mark.parametrize("fixture", ["string_ds", "insitu_ee"])
def test_precomputed_features_give_the_same_weights_to_the_bit(fixture, request, device):
    """TrialBatch.with_features() stores 1/z, log z and log(1 - z) per trial (24 more bytes) so
    the kernels skip those functions at every theta: on the CPU, whose kernel computes them with the same
    functions, weights and gradients stay identical to the bit; the CUDA kernel's own exp and log (libdevice)
    differ from the CPU's in the last bit, so there they agree to rounding."""
    ds = request.getfixturevalue(fixture)
    ds = ds if hasattr(ds, "to_torch") else ds[0]
    batch = _small_batch(ds, 4 if device.name == "cudasim" else 200, device)
    fast = batch.with_features()
    assert fast.feat.shape == (batch.n_trials, 3) and fast.nbytes - batch.nbytes == 24 * batch.n_trials
    th = torch.tensor([[0.4, 0.6, 0.3], [1.1, 1.5, 0.4], [0.05, 2.0, 0.2]], dtype=torch.float64,
                      device=device.torch_device)
    from fastrsa.hadronization.weights import log_weights_and_jacobian
    lw0, g0 = log_weights_and_jacobian(batch, th, device.backend)
    lw1, g1 = log_weights_and_jacobian(fast, th, device.backend)
    if device.name == "cpu":
        assert torch.equal(lw0, lw1) and torch.equal(g0, g1)
    else:
        torch.testing.assert_close(lw1, lw0, rtol=1e-13, atol=1e-12)
        torch.testing.assert_close(g1, g0, rtol=1e-13, atol=1e-12)


def test_rejected_trial_with_acceptance_one_is_refused(string_ds):
    """A rejected trial whose f_B(z) / (fPrel zHead) is >= 1 does not belong to the dataset's base: one
    DatasetError naming the trial (the same check refuses one whose odds F_B / (1 - F_B) would be infinite)."""
    fv = string_ds.flat(groups=("trials", "breaks"))
    to, bo = fv.offsets["trials"][:2], fv.offsets["breaks"][:2]
    z, fprel, mt2 = (np.array(fv[k][:to[-1]]) for k in ("z", "fprel", "mt2"))
    k = int(np.flatnonzero(mt2 < 0)[0])
    fprel[k] *= 1e-9                                    # acceptance far above 1
    with pytest.raises(DatasetError, match=rf"fprel: trial {k} \(event 0\) is rejected .*\(acceptance >= 1\)"):
        TrialBatch.from_arrays(string_ds.base, to, z, fprel, mt2, fv["id_old"][:to[-1]], fv["id_new"][:to[-1]], bo,
                               fv["pt2"][:bo[-1]])


def test_rejected_trials_with_acceptance_near_one(device):
    """Rejected trials whose acceptance F_B is 1 - eps (eps down to 1e-15): their odds q_B = F_B / (1 - F_B)
    ~ 1/eps, and the kernel's log(1 - q_B (r - 1)) equals log((1 - F_B r) / (1 - F_B)) in 50-digit
    arithmetic (-inf where F_B r >= 1), on every device. One event per eps: a rejected trial at z, then an
    accepted one. (The loader's log F_B near 0 comes out of a cancellation, so it is a multiple of 2^-53 and
    1 - exp(log F_B) happens to be exact there; for any other log F_B the odds need expm1, checked first.)"""
    import mpmath

    from fastrsa.hadronization.kernels.cpu import _odds_of
    lf = np.array([-1.3e-17, -1e-300, -0.7, 1.0])
    q = np.array([njit(_odds_of)(x) for x in lf])           # compiled, as the loader's sampling_base runs it
    np.testing.assert_allclose(q[:3], [1 / math.expm1(1.3e-17), 1e300, 1 / math.expm1(0.7)], rtol=1e-15)
    assert q[3] == -1.0                             # accepted

    from fastrsa.hadronization import lund
    from fastrsa.hadronization.flavours import flavour_class, flavour_table
    base = BaseParams(z_head=2.0)
    zh, table = base.z_head, flavour_table(base)
    eps = np.array([1e-9, 3e-11, 1e-12, 7e-13, 1e-13, 3e-14, 1e-14, 5e-15, 2e-15, 1e-15])
    n = len(eps)
    z = np.tile([0.45, 0.3], n)
    mt2 = np.tile([-1.0, 1.0], n)
    ids = np.ones(2 * n, np.int64), np.full(2 * n, 2)
    c = int(flavour_class(*ids)[0])
    a_off, c0, kc = table[c]

    def log_f(a, b, x):
        return lund.log_f_and_grad(a + a_off, b, c0 + kc * b, x, math.log(x), math.log1p(-x))[0]
    fprel = np.ones(2 * n)
    fprel[0::2] = math.exp(log_f(base.a, base.b, 0.45)) / zh / (1 - eps)
    batch = TrialBatch.from_arrays(base, np.arange(0, 2 * n + 1, 2), z, fprel, mt2, *ids, np.zeros(n + 1, np.int64),
                                   np.zeros(0), device=device.torch_device)
    lfb, lfB = np.empty(2 * n), np.empty(2 * n)
    _base_terms(z, mt2, fprel, np.full(2 * n, c, np.int8), table, base.a, base.b, math.log(zh), lfb, lfB)
    mpmath.mp.dps = 50
    for a, b in ((0.6, base.b), (0.8, base.b), (base.a, 1.1)):
        th = torch.tensor([a, b, base.sigma], dtype=torch.float64, device=device.torch_device)
        got = fastrsa.lund_log_weights(batch, th, backend=device.backend).cpu().numpy()
        for i in range(n):
            rej, acc = 2 * i, 2 * i + 1
            r = [min(mpmath.exp(mpmath.mpf(log_f(a, b, z[t])) - mpmath.mpf(lfb[t])), zh) for t in (rej, acc)]
            fb = mpmath.exp(mpmath.mpf(lfB[rej]))
            if fb * r[0] >= 1:
                assert got[i] == -math.inf, (a, b, eps[i], got[i])
            else:
                expect = mpmath.log((1 - fb * r[0]) / (1 - fb)) + mpmath.log(r[1])
                assert got[i] == pytest.approx(float(expect), rel=1e-9, abs=1e-9), (a, b, eps[i], got[i])


def test_flavour_classes_and_the_refusal_of_heavier_flavours():
    """Classes by hand from the rule (s of old and new, diquark of old and new, c or b fragmenting; a diquark
    fragments as its heaviest quark), and the one-line refusal of a flavour heavier than b."""
    from fastrsa.hadronization.flavours import flavour_class
    pairs = {(1, 2): 0, (3, 2): 1, (2, -3): 2, (2101, 3): 6, (3, 2101): 9, (-4, 1): 16, (5, 3): 34,
             (4301, 1): 20, (5503, -3): 38, (-3, -2203): 9, (3303, 3): 6}
    ids = np.array(list(pairs), np.int32)
    np.testing.assert_array_equal(flavour_class(ids[:, 0], ids[:, 1]), list(pairs.values()))
    for heavy in (6, -6101):
        with pytest.raises(DatasetError, match=f"fragmenting flavour {heavy} heavier than b"):
            flavour_class(np.array([1, heavy]), np.array([2, 2]))
