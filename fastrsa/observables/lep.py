"""Observables defined as the LEP measurements define them, and which measurement uses which.

ALEPH counts and shapes use the complete final state after decays: charged multiplicity = every
charged final-state particle (hadrons, and leptons from heavy-flavour decays; the decay products of
K0S and Lambda included, as in Rivet's ALEPH analyses, whose charged final state is all charged stable
particles), thrust of "all particles" = every final-state particle. A sample that stores only the hadrons
(datasets of format 1) cannot give these; asking for them is a clear error.

`MEASURED` maps a shipped measurement (see fastrsa.measurements) to the observable that reproduces it and
the statistic its values are: 'density' (1/N dN/dx per bin), 'fraction' (1/N N_bin), 'mean' (<x> per
event, one bin) or 'means' (one mean per bin, each bin of its own observable: a table of single numbers
such as ALEPH 1996 d44, the identified-hadron multiplicities).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError
from ..store.hadrons import HadronSample
from .basic import charge3
from .registry import register
from .shapes import thrust_of

STATISTICS = ("density", "fraction", "mean", "means")
LEP_ECM = 91.2      # [GeV] every shipped ALEPH table is at the Z pole


def _complete(h: HadronSample, name: str) -> None:
    if not getattr(h, "final_state_complete", False):
        raise DatasetError(f"{h.path}: observable {name!r} needs every final-state particle, but this sample "
                           "stores only the hadrons (dataset format 1, or a target without 'is_hadron'); "
                           "regenerate it with this fastrsa ('fastrsa generate')")


@register("charged_multiplicity_all", "event",
          "number of charged final-state particles after decays (ALEPH's n_ch)")
def charged_multiplicity_all(h: HadronSample) -> np.ndarray:
    _complete(h, "charged_multiplicity_all")
    charged = (charge3(h.pdg) != 0).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(charged)])
    return (csum[h.offsets[1:]] - csum[h.offsets[:-1]]).astype(np.float64)


@register("thrust_all", "event", "thrust of every final-state particle after decays (ALEPH 2004)")
def thrust_all(h: HadronSample) -> np.ndarray:
    _complete(h, "thrust_all")
    return thrust_of(h)


@register("one_minus_thrust_charged", "event", "1 - thrust of the charged final-state particles (ALEPH 1996)")
def one_minus_thrust_charged(h: HadronSample) -> np.ndarray:
    _complete(h, "one_minus_thrust_charged")
    return 1.0 - thrust_of(h.select(charge3(h.pdg) != 0))


@dataclass(frozen=True)
class MeasuredDefinition:
    observable: str | tuple     # a tuple, one observable per bin, for the statistic 'means'
    statistic: str
    note: str = ""

# ALEPH 1996 d44-x01-yNN (mean multiplicity per hadronic Z decay) -> the identified-hadron count that
# reproduces it: the same |PDG ids| (charge conjugates included) and, for eta and eta', the same x_p >= 0.1
# (fastrsa.pythia.species; tests/test_lep.py checks the ids against fastrsa.measurements' D44_SPECIES).
D44_OBSERVABLES = {2: "n_pi0", 3: "n_eta", 4: "n_etaprime", 5: "n_K0", 6: "n_rho0", 7: "n_omega", 8: "n_phi",
                   9: "n_Kstar_pm", 10: "n_Kstar0", 11: "n_Lambda", 12: "n_Sigma0", 13: "n_Xi",
                   14: "n_Sigma1385", 15: "n_Xi1530", 16: "n_Omega"}


MEASURED = {
    "ALEPH_2004_S5765862/d54-x01-y01": MeasuredDefinition("thrust_all", "density"),
    "ALEPH_1996_S3486095/d18-x01-y01": MeasuredDefinition(
        "charged_multiplicity_all", "fraction", "P(n_ch) in 2-wide bins centred on even n_ch"),
    "ALEPH_1996_S3486095/d03-x01-y01": MeasuredDefinition("one_minus_thrust_charged", "density"),
    "ALEPH_2004_S5765862/d01-x01-y01": MeasuredDefinition("charged_multiplicity_all", "mean",
                                                          "one bin per sqrt(s): select it with @91.2"),
    "ALEPH_1996_S3486095/d19-x01-y01": MeasuredDefinition("charged_multiplicity_all", "mean"),
    "ALEPH_1996_S3486095/d44-x01-y01": MeasuredDefinition("charged_multiplicity_all", "mean",
                                                          "the same number as d19-x01-y01"),
}
MEASURED["ALEPH_1996_S3486095/d44"] = MeasuredDefinition(tuple(D44_OBSERVABLES.values()), "means",
                                                         "d44-x01-y02..y16 as one table, one species per bin")
for _k, _obs in D44_OBSERVABLES.items():
    MEASURED[f"ALEPH_1996_S3486095/d44-x01-y{_k:02d}"] = MeasuredDefinition(_obs, "mean")
