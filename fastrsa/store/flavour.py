"""The flavour records of a dataset (format 3): which datasets hold them and their base point.

A shard made with Pythia's VariationFrag:flav on holds, per event, the 13 flavour-choice counters in the
column `flav_breaks`, and its metadata key `flavour` holds the flavour settings they were made with
(`FlavourBase`). Datasets of older formats, or made without the switch, have no flavour records: they
are reweighted in (a, b, sigma) only, and asking them for a flavour parameter is one DatasetError.
"""
from __future__ import annotations

from ..errors import DatasetError
from ..params import FLAVOUR_PARAMS, FlavourBase

N_FLAV = 13
FLAVOUR_NAMES = tuple(p.name for p in FLAVOUR_PARAMS)


def flavour_meta(base: FlavourBase | None) -> dict | None:
    """The `flavour` metadata of a shard: None when the run kept no flavour records."""
    if base is None:
        return None
    return {"base": base.to_dict(), "counters": N_FLAV}


def has_flavour(meta: dict) -> bool:
    return int(meta.get("format_version", 0)) >= 3 and isinstance(meta.get("flavour"), dict)


def meta_flavour_base(meta: dict, where: str) -> FlavourBase:
    """The flavour base of a dataset's metadata, or one DatasetError saying why it has none."""
    version = int(meta.get("format_version", 0))
    if version < 3:
        raise DatasetError(f"{where}: format version {version} has no flavour records, so "
                           f"{', '.join(FLAVOUR_NAMES)} cannot be reweighted (a, b, sigma can); regenerate "
                           "it with this fastrsa to fit flavour parameters")
    fl = meta.get("flavour")
    if not isinstance(fl, dict):
        raise DatasetError(f"{where}: made without flavour records (VariationFrag:flav off, or the string "
                           f"setup), so {', '.join(FLAVOUR_NAMES)} cannot be reweighted; generate with the ee "
                           "or cmnd setup")
    if fl.get("counters") != N_FLAV:
        raise DatasetError(f"{where}: flavour records with {fl.get('counters')} counters per event; this "
                           f"fastrsa reads Pythia 8.317's {N_FLAV}")
    return FlavourBase.from_dict(fl["base"])


def dataset_flavour_base(ds) -> FlavourBase:
    return meta_flavour_base(ds.meta, str(ds.path))
