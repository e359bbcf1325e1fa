"""Identified-hadron multiplicities and ratios per event (flavour observables).

The counts run over the whole event record (decayed particles too), as LEP measurements count them:
pi+-, K+-, p(pbar) and the species of ALEPH 1996 d44 (fastrsa.pythia.species.SPECIES; charge conjugates
included). They are stored per event by `fastrsa generate` (format 3, column `species_counts`); a sample
without them (format 1 or 2, a foreign target) gets one clear error.
"""
from __future__ import annotations

import numpy as np

from ..errors import DatasetError
from ..pythia.species import SPECIES_LABELS
from ..store.hadrons import HadronSample
from .registry import register, register_group

# observable name -> species label
NAMES = {"n_pi": "pi+-", "n_K": "K+-", "n_p": "p", "n_pi0": "pi0", "n_eta": "eta", "n_etaprime": "eta'(958)",
         "n_K0": "K0", "n_rho0": "rho0(770)", "n_omega": "omega(782)", "n_phi": "phi(1020)",
         "n_Kstar_pm": "K*(892)+-", "n_Kstar0": "K*(892)0", "n_Lambda": "Lambda", "n_Sigma0": "Sigma0",
         "n_Xi": "Xi-", "n_Sigma1385": "Sigma(1385)+-", "n_Xi1530": "Xi(1530)0", "n_Omega": "Omega-"}
assert set(NAMES.values()) == set(SPECIES_LABELS)


def species_count(h: HadronSample, label: str) -> np.ndarray:
    if h.species is None or label not in h.species_labels:
        raise DatasetError(f"{h.path}: no identified-hadron counts (species_counts, format 3); the flavour "
                           "observables need a dataset made by this fastrsa's 'generate'")
    return h.species[:, h.species_labels.index(label)].astype(np.float64)


def _make(label):
    return lambda h: species_count(h, label)


for _name, _label in NAMES.items():
    register(_name, "event", f"number of {_label} per event (charge conjugates included, whole event record"
             + (", x_p >= 0.1" if _label.startswith("eta") else "") + ")")(_make(_label))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@register("K_over_pi", "event", "K+- over pi+- of the event (0 without pions)")
def k_over_pi(h: HadronSample) -> np.ndarray:
    return _ratio(species_count(h, "K+-"), species_count(h, "pi+-"))


@register("p_over_pi", "event", "p(pbar) over pi+- of the event (0 without pions)")
def p_over_pi(h: HadronSample) -> np.ndarray:
    return _ratio(species_count(h, "p"), species_count(h, "pi+-"))


register_group("identified", tuple(NAMES))
register_group("flavour_ratios", ("K_over_pi", "p_over_pi"))
