"""Physics setups that `fastrsa generate` knows: Pythia settings and how one event is made.

Three kinds: "string" (the RSA paper's u-ubar string, events filled by hand), "ee" (e+e- -> Z ->
hadrons) and "cmnd" (a user's own Pythia configuration: its settings in order, any process).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ParameterError
from ..params import BaseParams


@dataclass(frozen=True)
class Setup:
    name: str
    energy: float       # string: energy per quark [GeV]; ee, cmnd: centre-of-mass energy [GeV]
    description: str
    settings: tuple = ()    # cmnd: the user's settings in the order applied (file lines, then --set)
    process: dict = field(default_factory=dict, hash=False)   # cmnd: beams, energy, process switches, source

    def to_dict(self) -> dict:
        d = {"name": self.name, "energy": self.energy, "description": self.description,
             "flavours": FLAVOURS[self.name], "settings": setup_settings(self)}
        if self.name == "cmnd":
            d["process"] = dict(self.process)
        return d


DEFAULT_ENERGY = {"string": 50.0, "ee": 91.2}
DESCRIPTIONS = {
    "string": "u-ubar string along z, energy per quark E, pions only (RSA paper setup)",
    "ee": "e+e- -> gamma*/Z -> hadrons (d u s c b), Pythia defaults, showers and decays on",
    "cmnd": "your own Pythia configuration (--cmnd FILE, --set 'Key = value'): any process",
}
FLAVOURS = {"string": "u d only: pions (no s, no diquarks, no vector or eta mesons)",
            "ee": "all (Pythia defaults)", "cmnd": "as configured"}
# Settings fastrsa applies on top of every configuration (then the shard's Random:seed).
RECORD_SWITCHES = ("VariationFrag:z = on", "VariationFrag:pT = on")
# Flavour records (Pythia's flavour-choice counters), on for ee and cmnd; the string setup makes no s quarks
# and no diquarks (probStoUD = probQQtoQ = 0), where flavour weights are undefined.
FLAVOUR_SWITCH = "VariationFrag:flav = on"


def make_setup(name: str, energy: float | None = None) -> Setup:
    """A built-in setup ("string" or "ee"); a "cmnd" setup is made by `cmnd_setup`."""
    if name not in DEFAULT_ENERGY:
        raise ParameterError(f"setup = {name!r} is unknown; use one of {sorted(DEFAULT_ENERGY)}")
    e = DEFAULT_ENERGY[name] if energy is None else float(energy)
    if not math.isfinite(e) or e <= 1.0:
        raise ParameterError(f"energy = {energy!r} must be a finite number > 1 GeV")
    return Setup(name, e, DESCRIPTIONS[name])


def cmnd_setup(settings, energy: float, process: dict) -> Setup:
    """The setup of a user's configuration: `settings` in order, the centre-of-mass energy Pythia
    had after init and a description of the process (`process`: beams, switches, source)."""
    beams = process.get("beams", ["?", "?"])
    desc = (f"Pythia configuration ({process.get('source') or '--set only'}): beams {beams[0]} x {beams[1]} "
            f"at {energy:g} GeV; " + (", ".join(process.get("switches", [])) or "no process switch set"))
    return Setup("cmnd", float(energy), desc, tuple(settings), dict(process))


def setup_settings(setup: Setup) -> list[str]:
    """Pythia settings of the setup itself (not the parameters that fastrsa varies)."""
    if setup.name == "cmnd":
        return list(setup.settings)
    if setup.name == "string":
        return ["ProcessLevel:all = off", "HadronLevel:Decay = off",
                "StringFlav:probQQtoQ = 0", "StringFlav:probStoUD = 0",
                "StringFlav:mesonUDvector = 0", "StringFlav:etaSup = 0",
                "StringFlav:etaPrimeSup = 0", "StringPT:enhancedFraction = 0"]
    return ["Beams:idA = 11", "Beams:idB = -11", f"Beams:eCM = {setup.energy!r}", "PDF:lepton = off",
            "WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 1 2 3 4 5"]


def run_settings(base: BaseParams, setup: Setup) -> list[str]:
    """Every setting of a generation run but the seed: setup, the varied parameters (built-in setups
    only: a cmnd configuration gives them itself and fastrsa reads them back after init) and the
    record switches."""
    if setup.name == "cmnd":
        return setup_settings(setup) + ["Print:quiet = on", "Next:numberCount = 0", "Random:setSeed = on",
                                        *RECORD_SWITCHES, FLAVOUR_SWITCH, f"VariationFrag:zHead = {base.z_head!r}"]
    return setup_settings(setup) + [
        "Print:quiet = on", "Next:numberCount = 0", "Random:setSeed = on",
        f"StringZ:aLund = {base.a!r}", f"StringZ:bLund = {base.b!r}", f"StringPT:sigma = {base.sigma!r}",
        f"StringZ:rFactC = {base.r_fact_c!r}", f"StringZ:rFactB = {base.r_fact_b!r}",
        "VariationFrag:z = on", "VariationFrag:pT = on", f"VariationFrag:zHead = {base.z_head!r}",
    ] + ([FLAVOUR_SWITCH] if setup.name == "ee" else [])


def pythia_settings(base: BaseParams, setup: Setup, seed: int) -> list[str]:
    """The complete, ordered settings of one shard: applied to a fresh `pythia8mc.Pythia("", False)`
    and followed by `init()`, they reproduce the shard (the string setup also fills each event by hand,
    see `fill_event`)."""
    return run_settings(base, setup) + [f"Random:seed = {seed}"]


def fill_event(pythia, setup: Setup, cache: dict) -> None:
    """Prepare Pythia's event record before `next()` (the string setup appends its two quarks; ee and
    cmnd do nothing)."""
    if setup.name != "string":
        return
    if "pz" not in cache:
        mq = pythia.particleData.m0(2)
        cache["mq"], cache["pz"] = mq, math.sqrt(setup.energy ** 2 - mq ** 2)
    ev, e, pz, mq = pythia.event, setup.energy, cache["pz"], cache["mq"]
    ev.reset()
    ev.append(2, 23, 101, 0, 0.0, 0.0, pz, e, mq)
    ev.append(-2, 23, 0, 101, 0.0, 0.0, -pz, e, mq)
