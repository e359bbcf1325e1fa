"""One Pythia instance for a generation run: settings, initialization, the base point as Pythia has
it, and one event (records + final-state hadrons)."""
from __future__ import annotations

from ..errors import PythiaError
from ..params import BaseParams
from .records import pythia_version
from .setups import Setup, fill_event, run_settings


def new_pythia(pythia8mc, base: BaseParams, setup: Setup, seed: int, extra=()):
    """An initialized Pythia with the setup's and fastrsa's settings, seeded with `seed`."""
    py = pythia8mc.Pythia("", False)
    for s in run_settings(base, setup) + [f"Random:seed = {seed}"] + list(extra):
        if not py.readString(s):
            raise PythiaError(f"Pythia {pythia_version()} refused the setting {s!r}")
    if not py.init():
        raise PythiaError(f"Pythia {pythia_version()} failed to initialize for setup {setup.name!r}")
    return py


def actual_base(py) -> BaseParams:
    """The base parameters as this Pythia has them (masses and extras from Pythia itself)."""
    s = py.settings
    return BaseParams(a=s.parm("StringZ:aLund"), b=s.parm("StringZ:bLund"), sigma=s.parm("StringPT:sigma"),
                      z_head=s.parm("VariationFrag:zHead"), r_fact_c=s.parm("StringZ:rFactC"),
                      r_fact_b=s.parm("StringZ:rFactB"), r_fact_h=s.parm("StringZ:rFactH"),
                      a_extra_squark=s.parm("StringZ:aExtraSQuark"),
                      a_extra_diquark=s.parm("StringZ:aExtraDiquark"),
                      use_old_aextra=bool(s.flag("StringZ:useOldAExtra")),
                      m_c=py.particleData.m0(4), m_b=py.particleData.m0(5))


def final_hadrons(event) -> tuple:
    """(px, py, pz, e, m, pdg) lists of the event's final-state hadrons."""
    px, py_, pz, e, m, pdg = [], [], [], [], [], []
    for j in range(event.size()):
        p = event[j]
        if p.isFinal() and p.isHadron():
            px.append(p.px()); py_.append(p.py()); pz.append(p.pz())
            e.append(p.e()); m.append(p.m()); pdg.append(p.id())
    return px, py_, pz, e, m, pdg


def next_event(py, reader, setup: Setup, cache: dict):
    """Generate one event; returns (Records, hadrons) or None when Pythia failed it."""
    fill_event(py, setup, cache)
    if not py.next():
        return None
    return reader.read(), final_hadrons(py.event)
