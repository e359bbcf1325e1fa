"""Observables defined as the LEP measurements define them, and which measurement uses which.

ALEPH counts and shapes use the complete final state after decays: charged multiplicity = every
charged final-state particle (hadrons, and leptons from heavy-flavour decays; the decay products of
K0S and Lambda included, as in Rivet's ALEPH analyses, whose charged final state is all charged stable
particles), thrust of "all particles" = every final-state particle. A sample that stores only the hadrons
(datasets of format 1) cannot give these; asking for them is a clear error.

`MEASURED` maps a shipped measurement (see fastrsa.measurements) to the observable that reproduces it and
the statistic its values are: 'density' (1/N dN/dx per bin), 'fraction' (1/N N_bin) or 'mean' (<x> per
event, one bin).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError
from ..store.hadrons import HadronSample
from .basic import charge3
from .registry import register
from .shapes import thrust_of

STATISTICS = ("density", "fraction", "mean")
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
    observable: str
    statistic: str
    note: str = ""


MEASURED = {
    "ALEPH_2004_S5765862/d54-x01-y01": MeasuredDefinition("thrust_all", "density"),
    "ALEPH_1996_S3486095/d18-x01-y01": MeasuredDefinition(
        "charged_multiplicity_all", "fraction", "P(n_ch) in 2-wide bins centred on even n_ch"),
    "ALEPH_1996_S3486095/d03-x01-y01": MeasuredDefinition("one_minus_thrust_charged", "density"),
    "ALEPH_2004_S5765862/d01-x01-y01": MeasuredDefinition("charged_multiplicity_all", "mean",
                                                          "one bin per sqrt(s): select it with @91.2"),
    "ALEPH_1996_S3486095/d19-x01-y01": MeasuredDefinition("charged_multiplicity_all", "mean"),
}
