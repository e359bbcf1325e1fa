"""The shipped LEP measurements (ALEPH at the Z pole) and `load`, which also reads a user's files.

Names:

- a shipped histogram: ``ALEPH_1996_S3486095/d18-x01-y01`` (the YODA path without ``/REF/``; a leading
  ``/REF/`` or ``/`` is accepted);
- ``ALEPH_1996_S3486095/d44``: the identified-hadron mean multiplicities d44-x01-y02..y16 as one
  15-bin measurement (bin i = one species, see `D44_SPECIES`);
- a shipped CSV extract by its stem, e.g. ``ALEPH_2004_thrust_T_91GeV``;
- a key of `LEP_DEFAULTS`, e.g. ``thrust``;
- a user's YODA file and histogram: ``FILE.yoda:/REF/ANALYSIS/d01-x01-y01`` (``/REF`` optional);
- a user's CSV file: ``FILE.csv`` (HEPData export or the extract layout, see `read_hepdata_csv`);
- any of these followed by ``@X`` (X a number): only the bin whose x range holds X, e.g.
  ``ALEPH_2004_S5765862/d01-x01-y01@91.2``.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .hepdata import read_hepdata_csv
from .model import Measurement
from .yoda import YodaFile, histo_name, read_yoda_file

LEP_DIR = Path(__file__).resolve().parent / "lep"
RIVET_MIRROR = "github.com/britzger/rivet @ 349a75e6f610 (2019-11-17), analyses/pluginLEP/"

_PAPERS = {
    "ALEPH_1991_S2435284": "ALEPH, Phys. Lett. B273 (1991) 181, doi:10.1016/0370-2693(91)90575-B (Inspire 319520)",
    "ALEPH_1996_S3486095": "ALEPH, Phys. Rept. 294 (1998) 1, doi:10.1016/S0370-1573(97)00045-8 (Inspire 428072)",
    "ALEPH_2004_S5765862": "ALEPH, Eur. Phys. J. C35 (2004) 457, doi:10.1140/epjc/s2004-01891-4 (Inspire 636645)",
}
YODA_FILES = tuple(f"{a}.yoda" for a in _PAPERS)
CSV_EXTRACTS = ("ALEPH_2004_thrust_T_91GeV", "ALEPH_2004_mean_nch_vs_roots", "ALEPH_1996_nch_dist_91GeV",
                "ALEPH_1996_1mT_charged_91GeV", "ALEPH_1991_nch_dist_91GeV")

# d44-x01-yNN of ALEPH_1996_S3486095 (mean multiplicity per hadronic Z decay, sqrt(s) = 91.2 GeV).
# Species from the Rivet analysis at the mirror commit: its init() books d44-x01-y02..y16 to the named
# particles and analyze() fills each with |PDG id| (so charge conjugates are included); its .plot file
# titles agree. y01 is not booked by Rivet; its value and error equal d19-x01-y01, the mean charged
# multiplicity. Entries: y-axis -> (label, |PDG ids|, note).
D44_SPECIES = {
    1: ("n_ch", (), "mean charged multiplicity (same number as d19-x01-y01); not booked by Rivet"),
    2: ("pi0", (111,), ""),
    3: ("eta", (221,), "Rivet counts only x_p = p/p_beam >= 0.1"),
    4: ("eta'(958)", (331,), "Rivet counts only x_p >= 0.1"),
    5: ("K0 (K0S+K0L)", (310, 130), ""),
    6: ("rho0(770)", (113,), ""),
    7: ("omega(782)", (223,), ""),
    8: ("phi(1020)", (333,), ""),
    9: ("K*(892)+-", (323,), ""),
    10: ("K*(892)0 + cc", (313,), ""),
    11: ("Lambda + cc", (3122,), ""),
    12: ("Sigma0 + cc", (3212,), ""),
    13: ("Xi- + cc", (3312,), ""),
    14: ("Sigma(1385)+- + cc", (3114, 3224), ""),
    15: ("Xi(1530)0 + cc", (3324,), ""),
    16: ("Omega- + cc", (3334,), ""),
}
D44_COMBINED = "ALEPH_1996_S3486095/d44"

# The measurements the project fits first.
LEP_DEFAULTS = {
    "thrust": "ALEPH_2004_S5765862/d54-x01-y01",
    "nch_distribution": "ALEPH_1996_S3486095/d18-x01-y01",
    "one_minus_thrust_charged": "ALEPH_1996_S3486095/d03-x01-y01",
    "mean_nch": "ALEPH_2004_S5765862/d01-x01-y01@91.2",
    "identified_mean_multiplicities": D44_COMBINED,
}

# Labels for the shipped histograms the project uses (the YODA files give no titles or axis labels).
_LABELS = {
    "ALEPH_2004_S5765862/d54-x01-y01": ("Thrust, all final-state particles, sqrt(s) = 91.2 GeV", "T",
                                        "1/sigma dsigma/dT", ""),
    "ALEPH_2004_S5765862/d01-x01-y01": ("Mean charged multiplicity vs sqrt(s)", "sqrt(s)", "<n_ch>", "GeV"),
    "ALEPH_1996_S3486095/d18-x01-y01": ("Charged multiplicity distribution, sqrt(s) = 91.2 GeV", "n_ch",
                                        "P(n_ch) (2-wide bins: 2/sigma dsigma/dn_ch)", ""),
    "ALEPH_1996_S3486095/d03-x01-y01": ("1 - thrust, charged particles, sqrt(s) = 91.2 GeV", "1-T",
                                        "1/N dN/d(1-T)", ""),
    "ALEPH_1996_S3486095/d19-x01-y01": ("Mean charged multiplicity, sqrt(s) = 91.2 GeV", "sqrt(s)", "<n_ch>",
                                        "GeV"),
    "ALEPH_1991_S2435284/d01-x01-y01": ("Charged multiplicity distribution, sqrt(s) = 91.2 GeV", "n_ch",
                                        "2/sigma dsigma/dn_ch", ""),
    "ALEPH_1991_S2435284/d02-x01-y01": ("Mean charged multiplicity, sqrt(s) = 91.2 GeV", "sqrt(s)", "<n_ch>",
                                        "GeV"),
}
for _k, (_lab, _ids, _note) in D44_SPECIES.items():
    _LABELS[f"ALEPH_1996_S3486095/d44-x01-y{_k:02d}"] = (
        f"Mean {_lab} multiplicity per hadronic Z decay" + (f" ({_note})" if _note else ""),
        "sqrt(s)", f"<n({_lab})>", "GeV")


@functools.lru_cache(maxsize=None)
def _shipped_yoda(fname: str) -> YodaFile:
    analysis = fname[:-len(".yoda")]
    yf = read_yoda_file(LEP_DIR / fname)
    for name, m in list(yf.measurements.items()):
        title, xl, yl, xu = _LABELS.get(name, ("", "", "", ""))
        yf.measurements[name] = dataclasses.replace(
            m, title=title or m.title, x_label=xl or m.x_label, y_label=yl or m.y_label, x_units=xu,
            source=f"{_PAPERS[analysis]}; HEPData record via Rivet reference data, {RIVET_MIRROR}{fname} "
                   f"/REF/{name}")
    return yf


@functools.lru_cache(maxsize=None)
def _shipped_csv(stem: str) -> Measurement:
    return read_hepdata_csv(LEP_DIR / f"{stem}.csv", path=stem)


def _d44_combined() -> Measurement:
    yf = _shipped_yoda("ALEPH_1996_S3486095.yoda")
    ks = [k for k in D44_SPECIES if k >= 2]
    parts = [yf.measurements[f"ALEPH_1996_S3486095/d44-x01-y{k:02d}"] for k in ks]
    idx = np.arange(len(ks), dtype=np.float64)
    return Measurement(
        path=D44_COMBINED, lo=idx - 0.5, hi=idx + 0.5, x=idx,
        values=[p.values[0] for p in parts], err_minus=[p.err_minus[0] for p in parts],
        err_plus=[p.err_plus[0] for p in parts], bin_labels=tuple(D44_SPECIES[k][0] for k in ks),
        title="Mean identified-hadron multiplicities per hadronic Z decay (d44-x01-y02..y16)",
        x_label="species index (see bin_labels)", y_label="<n> per event",
        source=f"{_PAPERS['ALEPH_1996_S3486095']}; HEPData record via Rivet reference data, {RIVET_MIRROR}"
               f"ALEPH_1996_S3486095.yoda /REF/ALEPH_1996_S3486095/d44-x01-y02..y16")


def _shipped_names() -> list[str]:
    names = []
    for f in YODA_FILES:
        names.extend(_shipped_yoda(f).measurements)
    names.append(D44_COMBINED)
    names.extend(CSV_EXTRACTS)
    return names


def available() -> list[str]:
    """The names of the shipped measurements (YODA histograms, the combined d44, the CSV extracts)."""
    return sorted(_shipped_names())


def _shipped(name: str) -> Measurement | None:
    key = histo_name(name)
    if key == D44_COMBINED:
        return _d44_combined()
    if key in CSV_EXTRACTS:
        return _shipped_csv(key)
    analysis = key.split("/", 1)[0]
    if analysis in _PAPERS:
        yf = _shipped_yoda(f"{analysis}.yoda")
        if key in yf.measurements or key in yf.skipped:
            return yf.get(key)      # an empty placeholder gives its own error
    return None


_AT = re.compile(r"^(.*)@([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$")


def load(spec) -> Measurement:
    """A `Measurement` by name (see the module docstring): shipped name, LEP_DEFAULTS key,
    ``FILE.yoda:/REF/.../dNN-xNN-yNN``, ``FILE.csv``, each optionally with ``@X`` to keep one bin."""
    s = str(spec).strip()
    if not s:
        raise DatasetError("load: field 'name' is empty; give a name from available(), FILE.yoda:/REF/... "
                           "or FILE.csv")
    m = _AT.match(s)
    at = None
    if m and not Path(s).exists():
        s, at = m.group(1), float(m.group(2))
    if s in LEP_DEFAULTS:
        meas = load(LEP_DEFAULTS[s])
    else:
        meas = _load_plain(s)
    return meas if at is None else meas.at(at)


def _load_plain(s: str) -> Measurement:
    ym = re.match(r"^(.*\.yoda):(.+)$", s, re.IGNORECASE)
    if ym:
        return read_yoda_file(ym.group(1)).get(ym.group(2))
    low = s.lower()
    if low.endswith(".yoda"):
        raise DatasetError(f"load: {s!r} names a YODA file but no histogram; write FILE.yoda:/REF/ANALYSIS/"
                           f"d01-x01-y01")
    if low.endswith(".csv"):
        if Path(s).exists():
            return read_hepdata_csv(s)
        stem = Path(s).stem
        if stem in CSV_EXTRACTS and not Path(s).parent.parts:
            return _shipped_csv(stem)
        raise DatasetError(f"load: CSV file {s!r} does not exist; check the path")
    found = _shipped(s)
    if found is not None:
        return found
    key = histo_name(s)
    candidates = _shipped_names() + list(LEP_DEFAULTS)
    close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see fastrsa.measurements.available()"
    raise DatasetError(f"load: measurement {s!r} is not shipped and not a FILE.yoda:/REF/... or FILE.csv; {hint}")
