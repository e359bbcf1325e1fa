"""fastrsa.measurements: YODA and HEPData CSV readers, the Measurement model, the shipped ALEPH tables."""
import hashlib
import re

import numpy as np
import pytest

from fastrsa import measurements as M
from fastrsa.errors import DatasetError
from fastrsa.measurements import Measurement, parse_yoda, read_covariance, read_hepdata_csv, read_yoda

LEP = M.LEP_DIR

# git blob ids of the reference files at britzger/rivet commit 349a75e6f610, analyses/pluginLEP/
BLOBS = {
    "ALEPH_1991_S2435284.yoda": "d25ae0ff216ce831a3dbccc9a5604a36f7d427ac",
    "ALEPH_1996_S3486095.yoda": "2269cfd4b827f4f20a67280e7bff3bb631aa5c58",
    "ALEPH_2004_S5765862.yoda": "3283bcd44d3ee3ff74953c0bfa9302f0b33bbb31",
}

# CSV extract -> the histogram it was cut from
EXTRACTS = {
    "ALEPH_2004_thrust_T_91GeV": "ALEPH_2004_S5765862/d54-x01-y01",
    "ALEPH_2004_mean_nch_vs_roots": "ALEPH_2004_S5765862/d01-x01-y01",
    "ALEPH_1996_nch_dist_91GeV": "ALEPH_1996_S3486095/d18-x01-y01",
    "ALEPH_1996_1mT_charged_91GeV": "ALEPH_1996_S3486095/d03-x01-y01",
    "ALEPH_1991_nch_dist_91GeV": "ALEPH_1991_S2435284/d01-x01-y01",
}

GOOD_BLOCK = """BEGIN YODA_SCATTER2D_V2 /REF/TEST_ANA/d01-x01-y01
IsRef: 1
Path: /REF/TEST_ANA/d01-x01-y01
Title: ~
Type: Scatter2D
---
# xval	 xerr-	 xerr+	 yval	 yerr-	 yerr+
1.0e+00	5.0e-01	5.0e-01	2.0e+00	1.0e-01	3.0e-01
2.0e+00	5.0e-01	5.0e-01	4.0e+00	2.0e-01	2.0e-01
END YODA_SCATTER2D_V2
"""


def one_line_error(excinfo, *parts):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, (p, msg)
    return msg


# ---- shipped files --------------------------------------------------------------------------------

@pytest.mark.parametrize("fname", sorted(BLOBS))
def test_shipped_yoda_files_are_the_rivet_reference_files(fname):
    data = (LEP / fname).read_bytes()
    assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == BLOBS[fname]


def test_sources_md_names_every_shipped_file_and_default():
    text = (LEP / "SOURCES.md").read_text()
    for f in sorted(LEP.iterdir()):
        if f.name != "SOURCES.md":
            assert f.name in text, f.name
    for name in M.LEP_DEFAULTS.values():
        assert name.split("@")[0].split("/")[1] in text
    assert "CC0" in text and "349a75e6f610" in text


def _raw_points(fname, path):
    """An independent, minimal parse of one block's numbers from the raw text."""
    text = (LEP / fname).read_text()
    block = text.split(f"BEGIN YODA_SCATTER2D_V2 {path}\n", 1)[1].split("END YODA_SCATTER2D_V2", 1)[0]
    rows = [ln.split() for ln in block.splitlines() if re.match(r"^[0-9]", ln)]
    return np.array(rows, dtype=float)


@pytest.mark.parametrize("fname,path", [("ALEPH_2004_S5765862.yoda", "/REF/ALEPH_2004_S5765862/d54-x01-y01"),
                                        ("ALEPH_1996_S3486095.yoda", "/REF/ALEPH_1996_S3486095/d18-x01-y01"),
                                        ("ALEPH_1991_S2435284.yoda", "/REF/ALEPH_1991_S2435284/d01-x01-y01"),
                                        ("ALEPH_2004_S5765862.yoda", "/REF/ALEPH_2004_S5765862/d01-x01-y01")])
def test_yoda_reader_reads_the_raw_numbers_exactly(fname, path):
    raw = _raw_points(fname, path)
    m = read_yoda(LEP / fname)[path[len("/REF/"):]]
    x, xm, xp, y, ym, yp = raw.T
    assert m.n == len(raw) > 0
    np.testing.assert_array_equal(m.x, x)
    np.testing.assert_array_equal(m.lo, x - xm)
    np.testing.assert_array_equal(m.hi, x + xp)
    np.testing.assert_array_equal(m.values, y)
    np.testing.assert_array_equal(m.err_minus, ym)
    np.testing.assert_array_equal(m.err_plus, yp)


def test_yoda_file_object_counts():
    # 311 scatter blocks in all; the 2004 file has one empty placeholder, d171-x01-y01
    counts = {}
    for f in M.YODA_FILES:
        yf = M.read_yoda_file(LEP / f)
        counts[f] = (len(yf.measurements), len(yf.skipped))
    assert counts == {"ALEPH_1991_S2435284.yoda": (5, 0), "ALEPH_1996_S3486095.yoda": (67, 0),
                      "ALEPH_2004_S5765862.yoda": (238, 1)}
    assert M.read_yoda_file(LEP / "ALEPH_2004_S5765862.yoda").skipped == {"ALEPH_2004_S5765862/d171-x01-y01":
                                                                          "empty scatter"}


@pytest.mark.parametrize("stem", sorted(EXTRACTS))
def test_csv_extracts_agree_with_the_yoda_histograms(stem):
    csv = M.load(stem)
    yoda = M.load(EXTRACTS[stem])
    assert EXTRACTS[stem] in csv.source        # the extract's own header names the histogram
    assert csv.n == yoda.n
    np.testing.assert_allclose(csv.values, yoda.values, rtol=5e-6)       # (rounded to 6 digits)
    np.testing.assert_allclose(csv.lo, yoda.lo, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(csv.hi, yoda.hi, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(csv.x, yoda.x, rtol=1e-12)
    np.testing.assert_allclose(csv.err_minus, yoda.err_minus, rtol=5e-6)   # extracts keep 6 digits
    np.testing.assert_allclose(csv.err_plus, yoda.err_plus, rtol=5e-6)


def test_hand_checked_numbers():
    # ALEPH 2004 mean n_ch at 91.2 GeV: 20.73 +- 0.21 (README); the YODA error is 0.210238
    m = M.load("ALEPH_2004_S5765862/d01-x01-y01@91.2")
    assert (m.n, m.values[0], m.x[0], m.err_minus[0], m.err_plus[0]) == (1, 20.73, 91.2, 0.210238, 0.210238)
    assert M.load("mean_nch").values[0] == 20.73
    # ALEPH 1991 mean n_ch: 20.85 +- 0.24 (README)
    m = M.load("ALEPH_1991_S2435284/d02-x01-y01")
    assert m.values[0] == 20.85 and abs(m.err_plus[0] - 0.24) < 0.001
    # ALEPH 1996 P(n_ch): the bin around n = 20 is [19, 21] with 0.133 +- 0.013
    m = M.load("nch_distribution").at(20)
    assert (m.lo[0], m.hi[0], m.values[0], m.err_minus[0]) == (19.0, 21.0, 0.133, 0.013)
    # ALEPH 2004 thrust: 42 bins of width 0.01 from T = 0.58 to 1.00; first 0.00115, last 1.31186
    m = M.load("thrust")
    assert m.n == 42 and m.values[0] == 0.00115 and m.values[-1] == 1.31186
    np.testing.assert_allclose(m.edges, np.linspace(0.58, 1.0, 43), atol=1e-12)
    # ALEPH 1996 1-T (charged): first bin [0, 0.005], 1.017 +- 0.1793544
    m = M.load("one_minus_thrust_charged")
    assert (m.lo[0], m.hi[0], m.values[0], m.err_plus[0]) == (0.0, 0.005, 1.017, 0.1793544)
    # the thrust peak bin [0.97, 0.98]: 18.56511 (the CSV extract rounds it to 18.5651)
    assert M.load("thrust").at(0.975).values[0] == 18.56511


def test_d44_species():
    # y01 repeats the mean charged multiplicity d19-x01-y01 (20.91 +- 0.222036)
    y01, d19 = M.load("ALEPH_1996_S3486095/d44-x01-y01"), M.load("ALEPH_1996_S3486095/d19-x01-y01")
    assert y01.values[0] == d19.values[0] == 20.91 and y01.err_plus[0] == d19.err_plus[0]
    d44 = M.load("identified_mean_multiplicities")
    assert d44.path == M.D44_COMBINED and d44.n == 15
    by = dict(zip(d44.bin_labels, zip(d44.values, d44.err_plus)))
    assert by["pi0"] == (9.63, 0.644748)
    assert by["K0 (K0S+K0L)"] == (2.06, 0.05)
    assert by["phi(1020)"][0] == 0.122
    assert by["Lambda + cc"] == (0.386, 0.016)
    assert by["Xi- + cc"][0] == 0.0297
    assert by["Omega- + cc"][0] == 0.001
    for k in range(2, 17):            # each combined bin is the y-axis of its label
        single = M.load(f"ALEPH_1996_S3486095/d44-x01-y{k:02d}")
        assert d44.values[k - 2] == single.values[0]
        assert d44.bin_labels[k - 2] == M.D44_SPECIES[k][0]
        assert M.D44_SPECIES[k][0] in single.title


def test_defaults_load_and_are_listed():
    names = set(M.available())
    assert len(names) == 310 + 1 + 5     # YODA scatters, combined d44, CSV extracts
    for key, spec in M.LEP_DEFAULTS.items():
        assert spec.split("@")[0] in names
        m = M.load(key)
        assert m.n >= 1 and m.source and m.title
        assert np.all(m.err_minus > 0) and np.all(m.err_plus > 0)
    assert set(M.CSV_EXTRACTS) <= names


def test_edges_increase_and_bins_are_ordered():
    contiguous = 0
    for name in M.available():
        m = M.load(name)
        assert np.all(m.hi >= m.lo), name
        if m.contiguous:
            contiguous += 1
            assert np.all(np.diff(m.edges) > 0), name
            assert m.edges.shape == (m.n + 1,)
    assert contiguous > 200
    gappy = M.load("ALEPH_1996_S3486095/d25-x01-y01")   # pi+- x_p spectrum: bins with gaps
    assert not gappy.contiguous
    with pytest.raises(DatasetError) as e:
        gappy.edges
    one_line_error(e, "edges", ".lo and .hi")


# ---- YODA reader: formats and errors --------------------------------------------------------------

def test_yoda_keeps_asymmetric_errors_separate(tmp_path):
    f = tmp_path / "t.yoda"
    f.write_text(GOOD_BLOCK)
    m = M.load(f"{f}:/REF/TEST_ANA/d01-x01-y01")
    np.testing.assert_array_equal(m.err_minus, [0.1, 0.2])
    np.testing.assert_array_equal(m.err_plus, [0.3, 0.2])
    np.testing.assert_allclose(m.total_error(), [0.2, 0.2])
    np.testing.assert_array_equal(m.total_error("max"), [0.3, 0.2])
    np.testing.assert_array_equal(m.edges, [0.5, 1.5, 2.5])
    assert M.load(f"{f}:TEST_ANA/d01-x01-y01").values.tolist() == [2.0, 4.0]   # /REF optional
    assert m.components == {}


def test_yoda_old_format_and_scatter1d():
    text = ("# BEGIN YODA_SCATTER2D /REF/OLD/d01-x01-y01\nPath=/REF/OLD/d01-x01-y01\nType=Scatter2D\n"
            "Title=Old style\n# xval xerr- xerr+ yval yerr- yerr+\n1 1 1 5 0.5 0.25\n3 1 1 6 0.5 0.5\n"
            "# END YODA_SCATTER2D\n\n"
            "BEGIN YODA_SCATTER1D_V2 /REF/OLD/d02-x01-y01\nPath: /REF/OLD/d02-x01-y01\nType: Scatter1D\n---\n"
            "# xval xerr- xerr+\n7.5 0.5 0.75\nEND YODA_SCATTER1D_V2\n\n"
            "BEGIN YODA_HISTO1D_V2 /OLD/h\nPath: /OLD/h\n---\n# junk we do not read\n0 1 2 3 4 5 6\n"
            "END YODA_HISTO1D_V2\n")
    yf = parse_yoda(text, "old.yoda")
    m = yf.get("/REF/OLD/d01-x01-y01")
    assert m.title == "Old style" and m.edges.tolist() == [0, 2, 4] and m.err_plus.tolist() == [0.25, 0.5]
    s = yf.get("OLD/d02-x01-y01")
    assert (s.values[0], s.err_minus[0], s.err_plus[0]) == (7.5, 0.5, 0.75)
    assert yf.skipped == {"OLD/h": "HISTO1D_V2"}
    with pytest.raises(DatasetError) as e:
        yf.get("OLD/h")
    one_line_error(e, "old.yoda", "HISTO1D_V2")


BAD_YODA = {
    "truncated": (GOOD_BLOCK.replace("END YODA_SCATTER2D_V2\n", ""), ":1:", "no 'END YODA_SCATTER2D_V2'"),
    "non-numeric": (GOOD_BLOCK.replace("4.0e+00\t2.0e-01", "4.0e+00\tabc"), ":9:", "'yerr-'"),
    "too few fields": (GOOD_BLOCK.replace("\t3.0e-01\n", "\n"), ":8:", "5 fields"),
    "negative error": (GOOD_BLOCK.replace("1.0e-01", "-1.0e-01"), ":8:", "'yerr-'"),
    "nan": (GOOD_BLOCK.replace("2.0e+00\t1.0e-01", "nan\t1.0e-01"), ":8:", "'yval'"),
    "path mismatch": (GOOD_BLOCK.replace("Path: /REF/TEST_ANA/d01", "Path: /REF/TEST_ANA/d02"), ":1:", "'Path'"),
    "end mismatch": (GOOD_BLOCK.replace("END YODA_SCATTER2D_V2", "END YODA_SCATTER1D_V2"), ":10:", "BEGIN"),
    "begin in block": (GOOD_BLOCK.replace("END YODA_SCATTER2D_V2\n", "") + GOOD_BLOCK.replace("d01", "d02"),
                       ":10:", "'BEGIN' inside"),
    "no separator": (GOOD_BLOCK.replace("---\n", ""), ":7:", "'---'"),
    "stray text": ("hello\n" + GOOD_BLOCK, ":1:", "outside a BEGIN/END"),
    "duplicate": (GOOD_BLOCK + GOOD_BLOCK, ":11:", "appears twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_YODA))
def test_bad_yoda_gives_one_line_dataset_error(tmp_path, case):
    text, lineno, part = BAD_YODA[case]
    f = tmp_path / "bad.yoda"
    f.write_text(text)
    with pytest.raises(DatasetError) as e:
        read_yoda(f)
    one_line_error(e, f"bad.yoda{lineno}", part)


def test_unknown_names_give_close_matches(tmp_path):
    with pytest.raises(DatasetError) as e:
        M.load("ALEPH_2004_S5765862/d54-x01-y1")
    one_line_error(e, "close matches", "ALEPH_2004_S5765862/d54-x01-y01")
    with pytest.raises(DatasetError) as e:
        M.load("thrus")
    one_line_error(e, "thrust")
    f = tmp_path / "t.yoda"
    f.write_text(GOOD_BLOCK)
    with pytest.raises(DatasetError) as e:
        M.load(f"{f}:/REF/TEST_ANA/d01-x01-y02")
    one_line_error(e, "t.yoda", "'TEST_ANA/d01-x01-y02' is not in the file", "TEST_ANA/d01-x01-y01")
    with pytest.raises(DatasetError) as e:
        M.load("ALEPH_2004_S5765862/d171-x01-y01")
    one_line_error(e, "no points")
    for spec, part in [(f"{tmp_path}/missing.yoda:/REF/A/d01-x01-y01", "does not exist"),
                       (str(f), "no histogram"), (f"{tmp_path}/missing.csv", "does not exist"),
                       ("thrust@0.2", "no bin holds x = 0.2")]:
        with pytest.raises(DatasetError) as e:
            M.load(spec)
        one_line_error(e, part)


# ---- HEPData CSV ----------------------------------------------------------------------------------

HEPDATA_CSV = """#: table_doi: 10.17182/hepdata.0000.v1/t1
#: name: Table 1
#: description: a made-up table for the test
$\\sqrt{s}$ [GeV],$\\sqrt{s}$ [GeV] LOW,$\\sqrt{s}$ [GeV] HIGH,$N_{ch}$,stat +,stat -,sys +,sys -
91.2,90,92,20.0,0.3,-0.4,1.2,-0.0
133,130,136,24.0,0.6,-0.6,2%,-1%
"""


def test_hepdata_csv_components_and_quadrature(tmp_path):
    f = tmp_path / "t1.csv"
    f.write_text(HEPDATA_CSV)
    m = read_hepdata_csv(f)
    assert m.path == "t1" and m.title == "Table 1" and m.source == "10.17182/hepdata.0000.v1/t1"
    assert (m.x_label, m.x_units, m.y_label, m.y_units) == ("$\\sqrt{s}$", "GeV", "$N_{ch}$", "")
    np.testing.assert_array_equal(m.lo, [90, 130])
    np.testing.assert_array_equal(m.hi, [92, 136])
    np.testing.assert_array_equal(m.x, [91.2, 133])
    assert set(m.components) == {"stat", "sys"}
    np.testing.assert_array_equal(m.components["stat"][0], [0.4, 0.6])      # minus side, sign dropped
    np.testing.assert_array_equal(m.components["stat"][1], [0.3, 0.6])
    np.testing.assert_allclose(m.components["sys"][0], [0.0, 0.24])         # 1% of 24
    np.testing.assert_allclose(m.components["sys"][1], [1.2, 0.48])         # 2% of 24
    np.testing.assert_allclose(m.err_minus, [0.4, np.hypot(0.6, 0.24)])
    np.testing.assert_allclose(m.err_plus, [np.hypot(0.3, 1.2), np.hypot(0.6, 0.48)])
    assert not m.contiguous                                                # gap 92..130
    assert M.load(str(f)).values.tolist() == [20.0, 24.0]


def test_hepdata_csv_symmetric_columns_and_several_y(tmp_path):
    f = tmp_path / "two.csv"
    f.write_text("x,A,stat,B,stat +,stat -\n1,10,1,100,5,-4\n2,20,2,200,6,-6\n")
    with pytest.raises(DatasetError) as e:
        read_hepdata_csv(f)
    one_line_error(e, "2 dependent columns", "y=")
    a = read_hepdata_csv(f, y="A")
    assert a.path == "two/A" and a.values.tolist() == [10, 20]
    assert a.err_minus.tolist() == a.err_plus.tolist() == [1, 2]
    b = read_hepdata_csv(f, y=1)
    assert b.err_plus.tolist() == [5, 6] and b.err_minus.tolist() == [4, 6]
    assert b.lo.tolist() == b.hi.tolist() == [1, 2]      # no LOW/HIGH: point bins


BAD_CSV = {
    "non-numeric": ("x,x LOW,x HIGH,y,stat +,stat -\n1,0,2,5,1,-1\n3,2,4,five,1,-1\n", ":3:", "'y'"),
    "unpaired": ("x,y,stat +\n1,5,1\n", ":1:", "'stat -' is missing"),
    "field count": ("x,y,stat +,stat -\n1,5,1,-1\n2,6,1\n", ":3:", "3 fields"),
    "no header": ("1,2,3\n", ":1:", "no header row"),
    "two tables": ("x,y\n1,2\n\nx,y\n3,4\n", "", "table=0..1"),
    "percent value": ("x,y,stat\n1,5%,1\n", ":2:", "percentage"),
    "bins reversed": ("x_lo,x_hi,x_center,value,err_minus,err_plus\n2,1,1.5,3,1,1\n", "", "hi 1.0 < lo 2.0"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_gives_one_line_dataset_error(tmp_path, case):
    text, lineno, part = BAD_CSV[case]
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(DatasetError) as e:
        read_hepdata_csv(f)
    one_line_error(e, f"bad.csv{lineno}", part)


def test_covariance_files(tmp_path):
    sq = tmp_path / "sq.csv"
    sq.write_text("# covariance\n4, 1, 0\n1, 9, 0\n0, 0, 1\n")
    c = read_covariance(sq)
    np.testing.assert_array_equal(c, [[4, 1, 0], [1, 9, 0], [0, 0, 1]])
    tr1 = tmp_path / "tr1.csv"           # 1-based upper triangle with a header row
    tr1.write_text("i,j,value\n1,1,4\n1,2,1\n2,2,9\n3,3,1\n")
    np.testing.assert_array_equal(read_covariance(tr1), c)
    tr0 = tmp_path / "tr0.txt"           # 0-based, whitespace separated
    tr0.write_text("0 0 4\n1 0 1\n1 1 9\n2 2 1\n")
    np.testing.assert_array_equal(read_covariance(tr0, n=3), c)
    bad = tmp_path / "bad.csv"
    bad.write_text("0,0,4\n0,1,1\n")
    with pytest.raises(DatasetError) as e:
        read_covariance(bad, layout="triplets")
    one_line_error(e, "diagonal entry (1,1) is missing")


# ---- the Measurement model ------------------------------------------------------------------------

def _m(**kw):
    base = dict(path="T/d01", lo=[0, 1, 2], hi=[1, 2, 3], values=[1.0, 2.0, 3.0], err_minus=[0.1, 0.2, 0.3],
                err_plus=[0.3, 0.2, 0.1], components={"stat": ([0.1, 0.2, 0.3], [0.3, 0.2, 0.1])})
    base.update(kw)
    return Measurement(**base)


def test_covariance_select_and_correlation():
    m = _m()
    np.testing.assert_allclose(m.covariance(), np.diag([0.04, 0.04, 0.04]))
    s = m.select(np.array([True, False, True]))
    assert s.values.tolist() == [1.0, 3.0] and s.lo.tolist() == [0, 2] and not s.contiguous
    assert s.components["stat"][1].tolist() == [0.3, 0.1]
    corr = np.array([[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
    mc = m.with_correlation(corr)
    np.testing.assert_allclose(mc.covariance()[0, 1], 0.5 * 0.2 * 0.2)
    np.testing.assert_allclose(mc.correlation(), corr)
    sub = mc.select([1, 0])
    np.testing.assert_allclose(sub.covariance(), [[0.04, 0.02], [0.02, 0.04]])
    assert m.values.flags.writeable is False


@pytest.mark.parametrize("kw,part", [
    (dict(err_minus=[0.1, -0.2, 0.3]), "'err_minus' bin 1"),
    (dict(values=[1.0, 2.0]), "'lo' has 3 entries"),
    (dict(values=[1.0, np.nan, 3.0]), "'values' bin 1"),
    (dict(cov=[[1, 0], [0, 1]]), "shape (2, 2)"),
    (dict(cov=[[1, 2, 0], [2, 1, 0], [0, 0, 1]]), "positive semi-definite"),
    (dict(bin_labels=("a",)), "'bin_labels'"),
])
def test_bad_measurement_fields(kw, part):
    with pytest.raises(DatasetError) as e:
        _m(**kw)
    one_line_error(e, "'T/d01'", part)


def test_bad_select_and_side():
    m = _m()
    for mask, part in [([True, False], "shape (2,)"), ([False] * 3, "selects no bin"), ([5], "outside 0..2")]:
        with pytest.raises(DatasetError) as e:
            m.select(np.array(mask))
        one_line_error(e, "'mask'", part)
    with pytest.raises(DatasetError) as e:
        m.total_error("both")
    one_line_error(e, "'side'", "sym, minus, plus, max")
