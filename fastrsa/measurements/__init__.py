"""Measured data to fit to: readers for YODA and HEPData CSV tables, and the shipped ALEPH (LEP) tables.

    from fastrsa import measurements as M
    thrust = M.load("ALEPH_2004_S5765862/d54-x01-y01")      # or M.load("thrust")
    thrust.edges, thrust.values, thrust.err_minus, thrust.err_plus, thrust.covariance()
    M.load("my_ref.yoda:/REF/MY_ANALYSIS/d01-x01-y01"); M.load("table.csv")
    M.available()                                           # shipped names

See docs/measurements.md. Depends on numpy and the standard library only.
"""
from .catalogue import CSV_EXTRACTS, D44_COMBINED, D44_SPECIES, LEP_DEFAULTS, LEP_DIR, YODA_FILES, available, load
from .hepdata import read_covariance, read_hepdata_csv, write_csv
from .model import Measurement
from .yoda import YodaFile, histo_name, parse_yoda, read_yoda, read_yoda_file

__all__ = ["Measurement", "load", "available", "LEP_DEFAULTS", "D44_SPECIES", "D44_COMBINED", "LEP_DIR",
           "YODA_FILES", "CSV_EXTRACTS", "read_yoda", "read_yoda_file", "parse_yoda", "YodaFile", "histo_name",
           "read_hepdata_csv", "read_covariance", "write_csv"]
