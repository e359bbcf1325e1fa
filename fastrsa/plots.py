"""Figures of fits, landscapes and uncertainties (matplotlib, each written as PNG and PDF)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import FastRSAError
from .fit import ellipse


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise FastRSAError("plots need matplotlib: pip install 'fastrsa[plot]' (or pass --no-plots)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, stem: Path) -> list[str]:
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        p = Path(f"{stem}.{ext}")
        tmp = p.with_name(f".{p.name}.tmp")
        fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")
        tmp.replace(p)             # a figure is either complete or absent
        out.append(str(p))
    _plt().close(fig)
    return out


def _ellipses(ax, mean, cov, color, label):
    for level, ls in ((0.68, "-"), (0.95, "--")):
        e = ellipse(mean, cov, level)
        ax.plot(e[:, 0], e[:, 1], ls, color=color, label=f"{label} {int(level * 100)}%")


def plot_landscape(land: dict, stem, path=None, truth=None, fitted=None, cov=None) -> list[str]:
    """Loss over (a, b) with the negative gradient, the fit path, the fitted point's ellipses and the truth."""
    plt = _plt()
    a, b = np.asarray(land["a"]), np.asarray(land["b"])
    L = np.asarray(land["loss"])
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    A, B = np.meshgrid(a, b, indexing="ij")
    cs = ax.contourf(A, B, np.log10(np.maximum(L, 1e-300)), levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="log10 loss")
    ga, gb = np.asarray(land["grad_a"]), np.asarray(land["grad_b"])
    norm = np.hypot(ga / np.ptp(a), gb / np.ptp(b)) + 1e-300
    ax.quiver(A, B, -ga / np.ptp(a) / norm, -gb / np.ptp(b) / norm, color="w", alpha=0.6, scale=40)
    if path is not None:
        p = np.asarray(path)
        ax.plot(p[:, 0], p[:, 1], ".-", color="orange", ms=3, lw=1, label="fit path")
        ax.plot(*p[0, :2], "o", color="orange", label="start")
    if fitted is not None and cov is not None:
        _ellipses(ax, fitted, cov, "red", "fit")
    if truth is not None:
        ax.plot(*truth, "*", color="white", mec="k", ms=14, label="target (truth)")
    ax.set_xlabel("a (StringZ:aLund)")
    ax.set_ylabel("b (StringZ:bLund) [GeV$^{-2}$]")
    ax.set_title(f"loss landscape (sigma = {land['sigma']:.3f})")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, stem)


def plot_diagnostics(land: dict, stem) -> list[str]:
    """Mean weight and N_eff/N of the reweighting over the landscape's grid."""
    plt = _plt()
    a, b = np.asarray(land["a"]), np.asarray(land["b"])
    A, B = np.meshgrid(a, b, indexing="ij")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, title in ((axes[0], "mean_weight", "mean weight"), (axes[1], "n_eff_frac", "N_eff / N")):
        cs = ax.contourf(A, B, np.asarray(land[key]), levels=20, cmap="magma")
        fig.colorbar(cs, ax=ax)
        ax.set_title(title)
        ax.set_xlabel("a")
        ax.set_ylabel("b [GeV$^{-2}$]")
    return _save(fig, stem)


def plot_observables(samples: dict, stem, bins: int = 30) -> list[str]:
    """samples: observable -> {label: (values, entry_weights)}; histograms (normalized per event) with
    error bars sqrt(sum w^2), one panel per observable."""
    plt = _plt()
    names = list(samples)
    ncol = min(3, len(names))
    nrow = (len(names) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        series = samples[name]
        allv = np.concatenate([v for v, _, _ in series.values()])
        lo, hi = np.quantile(allv, [0.001, 0.999])
        if np.all(allv == np.round(allv)):
            edges = np.arange(np.floor(lo), np.ceil(hi) + 2) - 0.5
        else:
            edges = np.linspace(lo, hi, bins + 1)
        centers = 0.5 * (edges[1:] + edges[:-1])
        for label, (v, w, norm) in series.items():
            h, _ = np.histogram(v, edges, weights=w)
            e2, _ = np.histogram(v, edges, weights=w * w)
            scale = 1.0 / (norm * np.diff(edges))
            ax.errorbar(centers, h * scale, yerr=np.sqrt(e2) * scale, fmt="o" if label == "target" else "-",
                        ms=3, drawstyle="default" if label == "target" else "steps-mid", label=label)
        ax.set_xlabel(name)
        ax.set_ylabel("1/N dN/dx")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, stem)


def plot_ellipses(ellipses: dict, stem, truth=None, points: dict | None = None, title: str = "") -> list[str]:
    """ellipses: label -> (mean [2], cov [2, 2]); 68% (solid) and 95% (dashed) ellipses in (a, b)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, (mean, cov)) in enumerate(ellipses.items()):
        c = colors[k % len(colors)]
        _ellipses(ax, mean, cov, c, label)
        ax.plot(*mean, "+", color=c)
        if points and label in points:
            p = np.asarray(points[label])
            ax.plot(p[:, 0], p[:, 1], ".", color=c, alpha=0.4, ms=3)
    if truth is not None:
        ax.plot(*truth, "*", color="k", ms=12, label="truth")
    ax.set_xlabel("a")
    ax.set_ylabel("b [GeV$^{-2}$]")
    ax.set_title(title or "confidence ellipses")
    ax.legend(fontsize=7)
    return _save(fig, stem)


def observable_samples(problem, theta) -> dict:
    """The base (unweighted), the reweighted base at theta and the target, per observable, for
    plot_observables. Hadron-level values carry their event's weight; norm is the sum of event weights."""
    p = problem.event_weights(theta)
    ones = np.ones_like(p)
    q = problem.target_weights.cpu().numpy()
    out = {}
    for name in problem.names:
        s, t = problem.all_sim[name], problem.target_obs[name]
        si, ti = s.event_index(), t.event_index()
        out[name] = {"base": (s.values, ones[si], ones.sum()), "reweighted to fit": (s.values, p[si], p.sum()),
                     "target": (t.values, q[ti], q.sum())}
    return out


def plot_measurement(target, curves: dict, stem, chi2: dict | None = None) -> list[str]:
    """The usual HEP figure of one measurement: data points with their errors, predictions as steps
    (curves: label -> (s [B], sd [B]) over the used bins), and a ratio panel to the data.
    `target` is a fit.measured.DataTarget; chi2: label -> chi2 to name in the legend."""
    plt = _plt()
    m = target.measurement
    skipped = set(target.skipped)
    means = target.statistic in ("mean", "means")      # single numbers: one point per bin, at 0, 1, ...
    used = np.array([f"{lo:g}-{hi:g}" not in skipped for lo, hi in zip(m.lo, m.hi)]) \
        if not means else np.ones(m.n, bool)
    lo, hi = m.lo[used], m.hi[used]
    x = 0.5 * (lo + hi) if not means else np.arange(float(m.n))
    xerr = 0.5 * (hi - lo) if not means else np.full(m.n, 0.4)
    d, em, ep = m.values[used], m.err_minus[used], m.err_plus[used]
    fig, (ax, rx) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    ax.errorbar(x, d, yerr=[em, ep], xerr=xerr, fmt="o", color="k", ms=3.5, label="data", zorder=5)

    def ratio(v):       # to the data; no ratio where the data are 0
        return np.divide(v, d, out=np.full(len(d), np.nan), where=d != 0)
    rx.errorbar(x, ratio(d), yerr=[ratio(em), ratio(ep)], xerr=xerr, fmt="o", color="k", ms=3)
    for k, (label, (s, sd)) in enumerate(curves.items()):
        s, sd = np.asarray(s), np.asarray(sd)
        name = label + (f" ($\\chi^2$ = {chi2[label]:.1f} / {len(d)})" if chi2 and label in chi2 else "")
        c = f"C{k}"
        if means:
            ax.errorbar(x + 0.1 * (k + 1), s, yerr=sd, fmt="s", color=c, ms=4, label=name)
            rx.errorbar(x + 0.1 * (k + 1), ratio(s), yerr=ratio(sd), fmt="s", color=c, ms=4)
            continue
        edges = np.append(lo, hi[-1])
        ax.stairs(s, edges, color=c, label=name)
        ax.fill_between(np.repeat(edges, 2)[1:-1], np.repeat(s - sd, 2), np.repeat(s + sd, 2), color=c,
                        alpha=0.2, lw=0)
        rx.stairs(ratio(s), edges, color=c)
    ax.set_ylabel(m.y_label or target.statistic)
    title = m.title or m.path
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    if target.statistic in ("density", "means") and np.all(d > 0) and d.max() / d.min() > 50:
        ax.set_yscale("log")
    rx.axhline(1.0, color="gray", lw=0.8)
    rx.set_ylabel("MC / data")
    rx.set_ylim(0.5, 1.5)
    if means:
        rx.set_xticks(x, m.bin_labels or [f"<{o}>" for o in target.observables], rotation=60, fontsize=7)
    else:
        rx.set_xlabel((m.x_label or target.label) + (f" [{m.x_units}]" if m.x_units else ""))
    fig.tight_layout()
    return _save(fig, stem)


def plot_profile(prof: dict, stem, delta: float = 1.0) -> list[str]:
    """The loss profiled along a combination of parameters (fit.scans.profile), with N_eff/N."""
    plt = _plt()
    d = prof["direction"]
    combo = " ".join(f"{c:+.2f} {n}/{d['scales'][n]:.3g}" for n, c in d["coefficients"].items())
    t = np.asarray(prof["t"])
    L = np.asarray(prof["loss"]) - min(prof["loss"])
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    ax.plot(t, L, "o-", ms=3, label="profiled loss - minimum")
    ax.axhline(delta, color="gray", ls="--", lw=0.8, label=f"$\\Delta$ = {delta:g}")
    ax.set_xlabel(f"shift along {combo} (relative units)")
    ax.set_ylabel("loss - min")
    ax2 = ax.twinx()
    ax2.plot(t, prof["n_eff_frac"], color="C3", lw=1, label="N_eff/N")
    ax2.set_ylabel("N_eff / N", color="C3")
    ax.set_title(("flat" if not d["constrained"] else "constrained") + " direction of the fit", fontsize=9)
    ax.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    return _save(fig, stem)


def plot_event_displays(sample, delta: float, n_events: int, stem, orders=(1, 2, 3)) -> list[str]:
    """Event displays (as Fig. 2 of the EventMover paper): each parton of the base event (grey), the event
    moved to Lambda + delta at each Taylor order, and the control event generated at Lambda + delta from the
    same random numbers (red), as arrows in the plane of the event's quark direction and its largest
    transverse momentum."""
    import torch

    from .shower import generate
    plt = _plt()
    n_events = min(n_events, sample.n_events)
    orders = [k for k in orders if k <= sample.orders]
    fig, axes = plt.subplots(1, n_events, figsize=(4.2 * n_events, 4.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        lo, hi = int(sample.offsets[i]), int(sample.offsets[i + 1])
        ctrl = generate(1, sample.lam + delta, sample.ecm, sample.seed, 0, first_event=sample.first_event + i,
                        dy=sample.dy)
        base = sample.p[lo:hi].detach().cpu().double()
        e1 = base[0, :3] / base[0, :3].norm()
        perp = base[:, :3] - (base[:, :3] @ e1)[:, None] * e1
        e2 = perp[int(torch.argmax(perp.norm(dim=1)))]
        e2 = e2 / e2.norm() if e2.norm() > 0 else torch.tensor([0.0, 1.0, 0.0], dtype=base.dtype)
        proj = lambda q: ((q[:, :3] @ e1).numpy(), (q[:, :3] @ e2).numpy())  # noqa: E731
        series = [("base", base, "0.5", "-")]
        series += [(f"moved, order {k}", sample.moved(delta, k)[lo:hi].detach().cpu().double(), f"C{k - 1}", "--")
                   for k in orders]
        same = int(ctrl.topology[0]) == int(sample.topology[i])
        series.append(("control" + ("" if same else " (other topology)"), ctrl.p.detach().cpu().double(), "red", ":"))
        for label, q, color, ls in series:
            x, y = proj(q)
            for j in range(len(x)):
                ax.plot([0, x[j]], [0, y[j]], ls=ls, color=color, lw=1.2, label=label if j == 0 else None)
        lim = float(base[:, 3].max()) * 1.05
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"event {sample.first_event + i}: {hi - lo} partons", fontsize=9)
        ax.set_xlabel("p along the quark [GeV]")
        ax.set_ylabel("p transverse [GeV]")
        if i == 0:
            ax.legend(fontsize=6, loc="lower left")
    fig.suptitle(f"Lambda = {sample.lam} GeV moved by {delta:+g} GeV", fontsize=10)
    fig.tight_layout()
    return _save(fig, stem)


def plot_joint_correlation(result: dict, stem, truth: dict | None = None) -> list[str]:
    """Joint fit: 68% / 95% ellipses of Lambda against each free Lund parameter (marginal 2D covariance), the
    optimizer's path, the fitted point and (when given) the truth; the correlation in each panel's title."""
    plt = _plt()
    free = list(result["free"])
    others = [n for n in free if n != "lambda"]
    if "lambda" not in free or not others:
        return []
    cov = np.asarray([[np.nan if v is None else v for v in row] for row in result["cov"]], np.float64)
    names = list(result.get("names") or [k for k in ("lambda", "a", "b", "sigma")])
    path = np.asarray([h["theta"] for h in result["history"]])
    fig, axes = plt.subplots(1, len(others), figsize=(4.6 * len(others), 4), squeeze=False)
    i = free.index("lambda")
    for ax, n in zip(axes[0], others):
        j = free.index(n)
        mean = [result["lambda"], result[n]]
        sub = cov[np.ix_([i, j], [i, j])]
        if np.all(np.isfinite(sub)):
            _ellipses(ax, mean, sub, "C0", "fit")
            rho = sub[0, 1] / np.sqrt(sub[0, 0] * sub[1, 1])
            ax.set_title(f"corr(Lambda, {n}) = {rho:+.2f}")
        ax.plot(path[:, names.index("lambda")], path[:, names.index(n)], ".-", color="0.6", ms=2, lw=0.6,
                label="path")
        ax.plot(*mean, "+", color="C0", ms=10)
        if truth is not None:
            ax.plot(truth["lambda"], truth[n], "*", color="k", ms=12, label="truth")
        ax.set_xlabel("Lambda [GeV]")
        ax.set_ylabel(n)
        ax.legend(fontsize=7)
    return _save(fig, stem)


def plot_moved_vs_data(target, top: dict, ratios: dict, stem, chi2: dict | None = None) -> list[str]:
    """The EventMover Fig. 3 analogue for one measurement. top: label -> (s [B], sd [B]) drawn over the data
    (the used bins of `target`, a fit.measured.DataTarget); ratios: order -> {label: (moved s, control s)}, one
    ratio panel per order (moved / control); chi2: label -> chi2 to the data, named in the legend."""
    plt = _plt()
    m = target.measurement
    skipped = set(target.skipped)
    used = np.array([f"{lo:g}-{hi:g}" not in skipped for lo, hi in zip(m.lo, m.hi)])
    lo, hi = m.lo[used], m.hi[used]
    edges = np.append(lo, hi[-1])
    x = 0.5 * (lo + hi)
    d, em, ep = m.values[used], m.err_minus[used], m.err_plus[used]
    n = len(ratios)
    fig, axes = plt.subplots(1 + n, 1, figsize=(6.4, 4.2 + 1.3 * n), sharex=True,
                             gridspec_kw={"height_ratios": [3] + [1] * n})
    ax = axes[0]
    ax.errorbar(x, d, yerr=[em, ep], xerr=0.5 * (hi - lo), fmt="o", color="k", ms=3, label="ALEPH", zorder=5)
    colors = {}
    for k, (label, (s, sd)) in enumerate(top.items()):
        c = colors.setdefault(label, f"C{k}")
        name = label + (f" ($\\chi^2$/ndf = {chi2[label]:.0f}/{len(d)})" if chi2 and label in chi2 else "")
        ls = "--" if "moved" in label else "-"
        ax.stairs(np.asarray(s), edges, color=c, ls=ls, label=name)
    if np.all(d > 0) and d.max() / d.min() > 50:
        ax.set_yscale("log")
    ax.set_ylabel(m.y_label or target.statistic)
    ax.set_title(m.title or m.path, fontsize=9)
    ax.legend(fontsize=6)
    for rx, (order, curves) in zip(axes[1:], ratios.items()):
        for k, (label, (s, c)) in enumerate(curves.items()):
            r = np.divide(s, c, out=np.full(len(s), np.nan), where=np.asarray(c) > 0)
            rx.stairs(r, edges, color=f"C{k + len(top)}", label=label)
        rx.axhline(1.0, color="gray", lw=0.8)
        rx.set_ylim(0.7, 1.3)
        rx.set_ylabel(f"order {order}\nmoved/ctrl", fontsize=7)
        rx.legend(fontsize=5, ncol=3)
    axes[-1].set_xlabel(m.x_label or target.label)
    fig.tight_layout()
    return _save(fig, stem)
