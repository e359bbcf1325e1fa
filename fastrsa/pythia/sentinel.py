"""The self-check of every generation job: weights recomputed from the records this process reads
must equal Pythia's own in-situ weights for a variation away from the base."""
from __future__ import annotations

import math

from ..errors import PythiaError
from ..params import BaseParams
from .records import make_reader, pythia_version
from .run import actual_base, new_pythia, next_event
from .setups import Setup

N_SENTINEL_EVENTS = 20
SENTINEL_RTOL = 1e-12       # measured: reader-based weights equal Pythia's in-situ ones to the last bit


def sentinel_point(base: BaseParams) -> dict:
    """A variation away from the base in every reweightable parameter."""
    return {"aLund": base.a + 0.1, "bLund": base.b * 1.2, "rFactC": base.r_fact_c * 0.9,
            "rFactB": base.r_fact_b * 1.1, "ptSigma": base.sigma * 0.9}


def run_sentinel(pythia8mc, base: BaseParams, setup: Setup, seed: int, n_events: int = N_SENTINEL_EVENTS) -> list:
    """Prove the record reader on this process; returns the records it checked.

    A separate Pythia carries the in-situ variation (it costs ~40% of the generation time, so the
    production instance runs without it); it has the first shard's seed and, since in-situ weights
    draw no random numbers, generates exactly that shard's first events.
    """
    sp = sentinel_point(base)
    group = " ".join(f"frag:{k}={v!r}" for k, v in sp.items())
    py = new_pythia(pythia8mc, base, setup, seed, extra=[f"VariationFrag:List = {{fastrsaSentinel {group}}}"])
    reader = make_reader(py, pythia8mc)
    bp = actual_base(py)
    kv = pythia8mc.KinematicVariations(bp.a, bp.b, bp.r_fact_c, bp.r_fact_b, bp.sigma, bp.z_head)
    cache, checked = {}, []
    while len(checked) < n_events:
        got = next_event(py, reader, setup, cache)
        if got is None:
            continue
        rec = got[0]
        info = py.infoPython()
        insitu = info.weightValueByIndex(info.numberOfWeights() - 1)
        recomputed = kv.weight(sp["aLund"], sp["bLund"], sp["rFactC"], sp["rFactB"], sp["ptSigma"],
                               rec.z_int.tolist(), rec.z_dbl.tolist(), rec.pt.tolist())
        if not (len(rec.z_dbl) > 0 and math.isclose(recomputed, insitu, rel_tol=SENTINEL_RTOL, abs_tol=0.0)):
            raise PythiaError(
                f"Pythia {pythia_version()}: records read from memory do not reproduce Pythia's in-situ "
                f"weight (event {len(checked)}: {recomputed!r} vs {insitu!r}, {len(rec.z_dbl) // 3} "
                f"trials); this build's layout is not that of Pythia 8.317 - install pythia8mc==8.317.2")
        checked.append(rec)
    return checked
