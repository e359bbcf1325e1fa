"""Identified-hadron counts per event over the whole event record (the particles that decayed too), as
LEP measurements count them: pi+-, K+-, p(pbar) and the species of ALEPH 1996 d44 (charge conjugates
included; eta and eta' only with x_p = |p| / E_beam >= 0.1, the measured range).

Stored per event in the column `species_counts` (format 3, docs/format.md), one count per entry of
SPECIES in this order.
"""
from __future__ import annotations

# (label, |PDG ids|, x_p cut or 0)
SPECIES = (
    ("pi+-", (211,), 0.0), ("K+-", (321,), 0.0), ("p", (2212,), 0.0),
    ("pi0", (111,), 0.0), ("eta", (221,), 0.1), ("eta'(958)", (331,), 0.1), ("K0", (310, 130), 0.0),
    ("rho0(770)", (113,), 0.0), ("omega(782)", (223,), 0.0), ("phi(1020)", (333,), 0.0),
    ("K*(892)+-", (323,), 0.0), ("K*(892)0", (313,), 0.0), ("Lambda", (3122,), 0.0), ("Sigma0", (3212,), 0.0),
    ("Xi-", (3312,), 0.0), ("Sigma(1385)+-", (3114, 3224), 0.0), ("Xi(1530)0", (3324,), 0.0),
    ("Omega-", (3334,), 0.0),
)
SPECIES_LABELS = tuple(s[0] for s in SPECIES)
SLOT = {pid: k for k, (_, ids, _) in enumerate(SPECIES) for pid in ids}
XP_CUT = {k: cut for k, (_, _, cut) in enumerate(SPECIES) if cut > 0}
