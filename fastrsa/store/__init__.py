"""Storage: the Parquet dataset format, its directory layout, reading and atomic writing."""
from .dataset import Dataset, FlatView, open_dataset
from .hadrons import HadronSample, check_same_setup, load_hadrons

__all__ = ["Dataset", "FlatView", "open_dataset", "HadronSample", "load_hadrons", "check_same_setup"]
