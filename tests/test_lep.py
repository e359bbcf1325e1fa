"""The LEP observables as ALEPH defines them, on e+e- events that keep every final-state particle, and the
LEP demo end to end (test-sized)."""
import json

import numpy as np
import pytest

from fastrsa.cli import main
from fastrsa.observables import charge3, compute
from fastrsa.store import load_hadrons


@pytest.fixture(scope="module")
def ee(tmp_path_factory):
    from fastrsa.generation import generate
    return generate(tmp_path_factory.mktemp("ee") / "ee", events=300, setup="ee", seed=71, jobs=2, progress=False)


def test_lep_observables_use_the_whole_final_state(ee):
    h = load_hadrons(ee.path)
    assert h.final_state_complete and not h.is_hadron.all()
    obs = compute(h, ["charged_multiplicity", "charged_multiplicity_all", "thrust", "thrust_all",
                      "one_minus_thrust_charged"])
    n_all, n_had = obs["charged_multiplicity_all"].values, obs["charged_multiplicity"].values
    # Every charged hadron counts, and so do the charged leptons of heavy-flavour decays.
    leptons = np.isin(np.abs(h.pdg), (11, 13)) & ~h.is_hadron
    per_event = np.add.reduceat(leptons.astype(int), h.offsets[:-1])
    np.testing.assert_array_equal(n_all, n_had + per_event)
    assert np.all(n_all % 2 == 0)          # charge conservation: an even number of charged particles
    # ALEPH's mean n_ch at the Z is 20.7; Pythia's default is close (300 events: +-0.4 statistical).
    assert 18.5 < n_all.mean() < 23.0
    # Thrust of all particles differs from the hadrons' (photons of pi0 decays are in it) but not by much.
    d = obs["thrust_all"].values - obs["thrust"].values
    assert np.any(np.abs(d) > 1e-6) and np.all(np.abs(d) < 0.2)
    one_m_t = obs["one_minus_thrust_charged"].values
    charged = h.select(charge3(h.pdg) != 0)
    assert np.all((one_m_t >= 0) & (one_m_t <= 0.5)) and len(charged) == len(h)


def test_lep_demo_end_to_end(tmp_path, capsys):
    rc = main(["demo", "--lep", "--out", str(tmp_path / "lep"), "--events", "600", "--steps", "5", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads((tmp_path / "lep" / "lep.json").read_text())
    assert set(summary["chi2"]) == {"base", "Pythia default", "fit"} and summary["ndf"] > 40
    assert summary["validation"]["chi2"] > 0
    assert len(list((tmp_path / "lep").glob("data_*.png"))) == 4
    assert "chi2/ndf against the data" in out and "validation: 600 events" in out


def test_d44_bins_map_to_the_hadron_counts_of_the_same_species():
    """Each bin of the shipped d44 table is predicted by the count of the same |PDG ids| (the catalogue's
    species, read from Rivet's analysis) and, for eta and eta', the same x_p cut."""
    from fastrsa.fit.measured import parse_data
    from fastrsa.measurements.catalogue import D44_SPECIES
    from fastrsa.observables.identified import NAMES
    from fastrsa.observables.lep import D44_OBSERVABLES
    from fastrsa.pythia.species import SPECIES
    ids = {label: (set(pids), cut) for label, pids, cut in SPECIES}
    target = parse_data("ALEPH_1996_S3486095/d44")
    assert target.statistic == "means" and target.observables == tuple(D44_OBSERVABLES.values())
    assert len(target.observables) == target.measurement.n == len(D44_SPECIES) - 1
    for k, obs in D44_OBSERVABLES.items():
        label, pids, note = D44_SPECIES[k]
        got, cut = ids[NAMES[obs]]
        assert got == set(pids), (k, obs)
        assert (cut == 0.1) == ("x_p" in note and note.endswith(">= 0.1")), (k, obs)
        one = parse_data(f"ALEPH_1996_S3486095/d44-x01-y{k:02d}")
        assert one.statistic == "mean" and one.observable == obs
        assert one.measurement.values[0] == target.measurement.values[k - 2]
