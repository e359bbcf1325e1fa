"""The self-check of every generation job: weights recomputed from the records this process reads
must equal Pythia's own in-situ weights for a variation away from the base."""
from __future__ import annotations

import math

from ..errors import PythiaError
from ..params import BaseParams, FlavourBase
from .cmnd import changed_fragmentation_settings
from .records import make_reader, pythia_version
from .run import actual_base, actual_flavour_base, apply_settings, new_pythia, next_event
from .setups import Setup, pythia_settings

N_SENTINEL_EVENTS = 20
SENTINEL_RTOL = 1e-12       # measured: reader-based weights equal Pythia's in-situ ones to the last bit
SENTINEL_GROUP = "fastrsaSentinel"
MAX_EVENTS_FACTOR = 20      # events without any string break count, but at most this many per wanted one


def sentinel_point(base: BaseParams) -> dict:
    """A variation away from the base in every reweightable parameter."""
    return {"aLund": base.a + 0.1, "bLund": base.b * 1.2, "rFactC": base.r_fact_c * 0.9,
            "rFactB": base.r_fact_b * 1.1, "ptSigma": base.sigma * 0.9}


def sentinel_flavour_point(fb: FlavourBase) -> dict:
    """A variation away from the flavour base in all four flavour parameters (Pythia's frag: keys)."""
    return {"rho": min(1.0, fb.rho * 1.2), "xi": min(1.0, fb.xi * 0.8), "x": min(1.0, fb.x * 0.9),
            "y": min(1.0, fb.y * 1.3)}


def _mismatch(pythia8mc, py, setup: Setup, k: int, recomputed: float, insitu: float, n_trials: int) -> PythiaError:
    what = (f"records read from memory do not reproduce Pythia's in-situ weight (event {k}: {recomputed!r} "
            f"vs {insitu!r}, {n_trials} trials)")
    suspects = changed_fragmentation_settings(py, pythia8mc, setup.settings) if setup.name == "cmnd" else []
    if suspects:
        return PythiaError(f"Pythia {pythia_version()}: {what} under this configuration; fastrsa cannot "
                           f"reweight with the changed fragmentation setting(s) {'; '.join(suspects)}: "
                           "remove them (or report the case)")
    return PythiaError(f"Pythia {pythia_version()}: {what}; this build's layout is not that of Pythia "
                       "8.317 - install pythia8mc==8.317.2")


def run_sentinel(pythia8mc, base: BaseParams, setup: Setup, seed: int, n_events: int = N_SENTINEL_EVENTS,
                 cache: dict | None = None) -> list:
    """Prove the record reader on this process; returns the records it checked.

    A separate Pythia carries the in-situ variation (it costs ~40% of the generation time, so the
    production instance runs without it); it has the first shard's settings and seed and, since in-situ
    weights draw no random numbers, generates exactly that shard's first events. Events without
    string breaks (a weight of 1 both ways) are checked too, but `n_events` events with breaks are needed.
    `cache`: what `fill_event` needs (the dqcd setup: `{"partons": PartonEvents}` of the shard's first events).
    """
    sp = sentinel_point(base)
    group = " ".join(f"frag:{k}={v!r}" for k, v in sp.items())
    probe = pythia8mc.Pythia("", False)        # settings are read at readString: no init needed to know them
    apply_settings(probe, pythia_settings(base, setup, seed))
    fb = actual_flavour_base(probe)
    del probe
    fp, fv = None, None
    if fb is not None:      # the flavour records are proven by the same in-situ group, all nine keys varied
        fp = sentinel_flavour_point(fb)
        group += " " + " ".join(f"frag:{k}={v!r}" for k, v in fp.items())
    py = new_pythia(pythia8mc, base, setup, seed, extra=[f"VariationFrag:List = {{{SENTINEL_GROUP} {group}}}"])
    reader = make_reader(py, pythia8mc, flavour=fb is not None)
    bp = actual_base(py)
    kv = pythia8mc.KinematicVariations(bp.a, bp.b, bp.r_fact_c, bp.r_fact_b, bp.sigma, bp.z_head)
    if fb is not None:
        fv = pythia8mc.FlavorVariations(fb.xi, fb.rho, fb.x, fb.y)
        fparms = fv.parms(fp["xi"], fp["rho"], fp["x"], fp["y"])
    info = py.infoPython()
    names = [info.weightNameByIndex(i) for i in range(info.numberOfWeights())]
    idx = names.index(SENTINEL_GROUP) if SENTINEL_GROUP in names else len(names) - 1
    cache, checked, seen = dict(cache or {}), [], 0
    while len(checked) < n_events:
        if seen >= MAX_EVENTS_FACTOR * n_events:
            raise PythiaError(f"only {len(checked)} of {seen} events had a string to fragment: this "
                              "configuration makes (almost) no strings, so there is nothing to reweight")
        got = next_event(py, reader, setup, cache)
        if got is None:
            continue
        seen += 1
        rec = got[0]
        insitu = py.infoPython().weightValueByIndex(idx)
        recomputed = kv.weight(sp["aLund"], sp["bLund"], sp["rFactC"], sp["rFactB"], sp["ptSigma"],
                               rec.z_int.tolist(), rec.z_dbl.tolist(), rec.pt.tolist())
        if fv is not None:      # FlavorVariations reads 14 counters; Pythia 8.317 keeps 13 (the 14th is unused)
            recomputed *= fv.weight(fparms, rec.flav.tolist() + [0])
        if not math.isclose(recomputed, insitu, rel_tol=SENTINEL_RTOL, abs_tol=0.0):
            raise _mismatch(pythia8mc, py, setup, len(checked), recomputed, insitu, len(rec.z_dbl) // 3)
        if len(rec.z_dbl) > 0:
            checked.append(rec)
    return checked
