"""One Pythia instance for a generation run: settings, initialization, the base point as Pythia has
it, and one event (records + every final-state particle)."""
from __future__ import annotations

from ..errors import ParameterError, PythiaError
from ..params import BaseParams, FlavourBase
from .cmnd import check_reweightable
from .records import pythia_version
from .setups import RECORD_SWITCHES, Setup, cmnd_setup, fill_event, pythia_settings
from .species import SLOT, SPECIES, XP_CUT


def apply_settings(py, settings, origins=None) -> None:
    """readString every setting in order; a refused one is a PythiaError naming it (and its origin)."""
    for k, s in enumerate(settings):
        if not py.readString(s):
            where = f"{origins[k]}: " if origins and k < len(origins) and origins[k] else ""
            raise PythiaError(f"{where}Pythia {pythia_version()} refused the setting {s!r} (unknown key or a "
                              "value it cannot read)")


def new_pythia(pythia8mc, base: BaseParams, setup: Setup, seed: int, extra=()):
    """An initialized Pythia with exactly `pythia_settings(base, setup, seed)` (+ `extra`)."""
    py = pythia8mc.Pythia("", False)
    apply_settings(py, pythia_settings(base, setup, seed) + list(extra))
    if not py.init():
        raise PythiaError(f"Pythia {pythia_version()} failed to initialize for setup {setup.name!r}"
                          + (" (its messages above say why)" if setup.name == "cmnd" else ""))
    return py


def probe_cmnd(pythia8mc, settings: list[tuple[str, str]], z_head: float, seed: int, source: str):
    """Initialize a user's configuration once, before anything is written: every line must be one
    Pythia reads, init must succeed and the settings must be reweightable. Returns (Setup, BaseParams
    as Pythia has them after init)."""
    lines = [s for s, _ in settings]
    setup = cmnd_setup(lines, 0.0, {})
    py = pythia8mc.Pythia("", False)
    apply_settings(py, lines, [o for _, o in settings])
    apply_settings(py, pythia_settings(BaseParams(z_head=z_head), setup, seed)[len(lines):])
    if not py.init():
        raise PythiaError(f"Pythia {pythia_version()} failed to initialize with the configuration "
                          f"({source or '--set'}); its messages above say why")
    check_reweightable(py)
    if not py.settings.flag("ProcessLevel:all"):
        raise ParameterError("ProcessLevel:all = off is refused by fastrsa generate: it has no way to fill "
                             "the event record by hand; record your own loop with fastrsa.Recorder")
    info = py.infoPython()
    st = py.settings
    switches = [s for s in lines if _is_process_switch(s)]
    process = {"source": source, "beams": [st.mode("Beams:idA"), st.mode("Beams:idB")],
               "eCM": info.eCM(), "frame_type": st.mode("Beams:frameType"),
               "process_level": bool(st.flag("ProcessLevel:all")), "switches": switches}
    return cmnd_setup(lines, info.eCM(), process), actual_base(py)


def _is_process_switch(line: str) -> bool:
    key, _, val = line.partition("=")
    group = key.strip().split(":", 1)[0]
    return val.strip().lower() in ("on", "true", "yes", "1") and group[:1].isalpha() and group not in (
        "Print", "Next", "Init", "Check", "Random", "Tune", "PartonLevel", "HadronLevel", "ProcessLevel",
        "PDF", "Beams", "StringZ", "StringPT", "StringFlav", "TimeShower", "SpaceShower",
        "MultipartonInteractions", "ColourReconnection", "BeamRemnants", "Main")


def check_record_switches(py) -> None:
    """The records exist only with VariationFrag:z and VariationFrag:pT on."""
    for s in RECORD_SWITCHES:
        key = s.split("=")[0].strip()
        if not py.settings.flag(key):
            raise PythiaError(f"{key} is off: Pythia keeps no rejection records without it; "
                              f"readString('{s}') before init()")


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


def actual_flavour_base(py) -> FlavourBase | None:
    """The flavour settings as this Pythia has them, or None when it keeps no flavour records
    (VariationFrag:flav off, or a base at which the flavour weights are undefined, such as the string
    setup's probStoUD = probQQtoQ = 0)."""
    s = py.settings
    if not s.flag("VariationFrag:flav"):
        return None
    fb = FlavourBase(rho=s.parm("StringFlav:probStoUD"), xi=s.parm("StringFlav:probQQtoQ"),
                     x=s.parm("StringFlav:probSQtoQQ"), y=s.parm("StringFlav:probQQ1toQQ0"),
                     decuplet_sup=s.parm("StringFlav:decupletSup"), popcorn_rate=s.parm("StringFlav:popcornRate"))
    try:
        fb.check_reweightable()
    except ParameterError:
        return None
    return fb


def final_state(event) -> tuple:
    """(px, py, pz, e, m, pdg, is_hadron) lists of the event's final-state particles, in event-record
    order: hadrons, and with decays on also photons and leptons (format 2); then the identified-hadron
    counts over the whole record (pythia.species.SPECIES, format 3)."""
    px, py_, pz, e, m, pdg, had = [], [], [], [], [], [], []
    counts = [0] * len(SPECIES)
    e_beam = 0.5 * event[0].m() if event.size() else 0.0
    for j in range(event.size()):
        p = event[j]
        k = SLOT.get(p.idAbs())
        if k is not None and (k not in XP_CUT or p.pAbs() >= XP_CUT[k] * e_beam):
            counts[k] += 1
        if p.isFinal():
            px.append(p.px()); py_.append(p.py()); pz.append(p.pz())
            e.append(p.e()); m.append(p.m()); pdg.append(p.id()); had.append(p.isHadron())
    return px, py_, pz, e, m, pdg, had, counts


def final_hadrons(event) -> tuple:
    """(px, py, pz, e, m, pdg) of the final-state hadrons only (what format 1 stored)."""
    cols = final_state(event)
    keep = cols[6]
    return tuple([v for v, k in zip(c, keep) if k] for c in cols[:6])


def next_event(py, reader, setup: Setup, cache: dict):
    """Generate one event; returns (Records, particles) or None when Pythia failed it."""
    fill_event(py, setup, cache)
    ok = py.next()
    if setup.name == "dqcd":
        cache["partons"].done(ok)      # next shower event after a success, the same one again after a failure
    if not ok:
        return None
    return reader.read(), final_state(py.event)
