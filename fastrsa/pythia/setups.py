"""Physics setups that `fastrsa generate` knows: Pythia settings and how one event is made.

Four kinds: "string" (the RSA paper's u-ubar string, events filled by hand), "ee" (e+e- -> Z ->
hadrons), "cmnd" (a user's own Pythia configuration: its settings in order, any process) and "dqcd"
(parton showers of `fastrsa.shower` handed to Pythia for hadronization only, `PartonEvents`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError, PythiaError
from ..params import BaseParams


@dataclass(frozen=True)
class Setup:
    name: str
    energy: float       # string: energy per quark [GeV]; ee, cmnd: centre-of-mass energy [GeV]
    description: str
    settings: tuple = ()    # cmnd: the user's settings in the order applied (file lines, then --set)
    process: dict = field(default_factory=dict, hash=False)   # cmnd: beams, energy, process switches, source
    shower: dict = field(default_factory=dict, hash=False)    # dqcd: lambda, orders, dy, shower_version

    def to_dict(self) -> dict:
        d = {"name": self.name, "energy": self.energy, "description": self.description,
             "flavours": FLAVOURS[self.name], "settings": setup_settings(self)}
        if self.name == "cmnd":
            d["process"] = dict(self.process)
        if self.name == "dqcd":
            d["shower"] = dict(self.shower)
        return d


DEFAULT_ENERGY = {"string": 50.0, "ee": 91.2, "dqcd": 91.2}
DESCRIPTIONS = {
    "string": "u-ubar string along z, energy per quark E, pions only (RSA paper setup)",
    "ee": "e+e- -> gamma*/Z -> hadrons (d u s c b), Pythia defaults, showers and decays on",
    "cmnd": "your own Pythia configuration (--cmnd FILE, --set 'Key = value'): any process",
    "dqcd": "e+e- -> q qbar + fastrsa.shower (Discrete QCD, moves with Lambda), hadronized by Pythia "
            "(ProcessLevel:all = off), decays on",
}
FLAVOURS = {"string": "u d only: pions (no s, no diquarks, no vector or eta mesons)",
            "ee": "all (Pythia defaults)", "cmnd": "as configured", "dqcd": "all (Pythia defaults)"}
# Settings fastrsa applies on top of every configuration (then the shard's Random:seed).
RECORD_SWITCHES = ("VariationFrag:z = on", "VariationFrag:pT = on")
# Flavour records (Pythia's flavour-choice counters), on for ee and cmnd; the string setup makes no s quarks
# and no diquarks (probStoUD = probQQtoQ = 0), where flavour weights are undefined.
FLAVOUR_SWITCH = "VariationFrag:flav = on"


def make_setup(name: str, energy: float | None = None, shower: dict | None = None) -> Setup:
    """A built-in setup ("string", "ee" or "dqcd" with its `shower` parameters); a "cmnd" setup is made by
    `cmnd_setup`."""
    if name not in DEFAULT_ENERGY:
        raise ParameterError(f"setup = {name!r} is unknown; use one of {sorted(DEFAULT_ENERGY)}")
    e = DEFAULT_ENERGY[name] if energy is None else float(energy)
    if not math.isfinite(e) or e <= 1.0:
        raise ParameterError(f"energy = {energy!r} must be a finite number > 1 GeV")
    return Setup(name, e, DESCRIPTIONS[name], shower=dict(shower or {}) if name == "dqcd" else {})


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
    if setup.name == "dqcd":
        return ["ProcessLevel:all = off"]       # hadronization (and decays) of the shower's partons only
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
    """Prepare Pythia's event record before `next()` (the string setup appends its two quarks, dqcd the
    partons of the next shower event of `cache["partons"]`, a `PartonEvents`; ee and cmnd do nothing)."""
    if setup.name == "dqcd":
        cache["partons"].fill(pythia)
        return
    if setup.name != "string":
        return
    if "pz" not in cache:
        mq = pythia.particleData.m0(2)
        cache["mq"], cache["pz"] = mq, math.sqrt(setup.energy ** 2 - mq ** 2)
    ev, e, pz, mq = pythia.event, setup.energy, cache["pz"], cache["mq"]
    ev.reset()
    ev.append(2, 23, 101, 0, 0.0, 0.0, pz, e, mq)
    ev.append(-2, 23, 0, 101, 0.0, 0.0, -pz, e, mq)


# ---- dqcd: parton-level events from fastrsa.shower, hadronized by Pythia -------------------------------

MAX_HADRONIZATION_TRIES = 10     # a parton event whose hadronization fails this often stops the run


def hadronization_seed(run_seed: int, event: int, attempt: int = 0) -> int:
    """Pythia's random seed for hadronizing shower event `event` of a run (try `attempt`): a function of the
    run seed and the event index only, so a moved copy of the event is hadronized with the same random
    numbers as the event itself (correlated hadronization noise)."""
    state = np.random.SeedSequence([int(run_seed), 0x4AD, int(event), int(attempt)]).generate_state(1)[0]
    return int(state % 900_000_000) + 1


def append_partons(event, pdg: np.ndarray, p: np.ndarray) -> None:
    """Append one colour chain q g ... g qbar to Pythia's event record (status 23): colour tags
    101, 102, ... along the chain (the quark carries colour 101, gluon k anticolour 100+k and colour 101+k,
    the antiquark the last anticolour). Each parton's mass is the one its four-momentum has (signed
    sqrt(E^2 - |p|^2), as Pythia's mCalc): nothing is put on shell."""
    n = len(pdg)
    m2 = p[:, 3] ** 2 - (p[:, 0] ** 2 + p[:, 1] ** 2 + p[:, 2] ** 2)
    m = np.sign(m2) * np.sqrt(np.abs(m2))
    for j in range(n):
        col = 101 + j if j < n - 1 else 0
        acol = 100 + j if j > 0 else 0
        event.append(int(pdg[j]), 23, col, acol, float(p[j, 0]), float(p[j, 1]), float(p[j, 2]), float(p[j, 3]),
                     float(m[j]))


class PartonEvents:
    """Parton events handed to Pythia one by one (the dqcd setup's `cache["partons"]`).

    pdg [n_partons], p [n_partons, 4] (px, py, pz, E) in colour-chain order, offsets [n+1], events [n] (the
    events' indices in their run, which fix their hadronization seeds). `fill` reseeds Pythia with the
    event's seed and appends its partons; `done(ok)` (called by `run.next_event`) moves to the next event
    after a success and retries the same partons with the next seed after a failure (never skips one).
    """

    def __init__(self, pdg, p, offsets, events, run_seed: int):
        self.pdg, self.p = np.asarray(pdg), np.asarray(p, np.float64)
        self.offsets, self.events = np.asarray(offsets, np.int64), np.asarray(events, np.int64)
        self.run_seed = int(run_seed)
        self.i, self.attempt, self.failed, self.seeds = 0, 0, 0, []

    def __len__(self) -> int:
        return len(self.events)

    def fill(self, pythia) -> None:
        if self.i >= len(self.events):
            raise PythiaError(f"the parton source is exhausted after {self.i} events (a shard asked for more "
                              "events than its showers hold)")
        a, b = self.offsets[self.i], self.offsets[self.i + 1]
        self._seed = hadronization_seed(self.run_seed, int(self.events[self.i]), self.attempt)
        pythia.rndm.init(self._seed)
        pythia.event.reset()
        append_partons(pythia.event, self.pdg[a:b], self.p[a:b])

    def done(self, ok: bool) -> None:
        if ok:
            self.seeds.append(self._seed)
            self.i, self.attempt = self.i + 1, 0
            return
        self.failed += 1
        self.attempt += 1
        if self.attempt >= MAX_HADRONIZATION_TRIES:
            raise PythiaError(f"Pythia failed to hadronize shower event {int(self.events[self.i])} "
                              f"{MAX_HADRONIZATION_TRIES} times; its partons cannot form a string")
