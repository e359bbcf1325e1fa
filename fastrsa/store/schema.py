"""The on-disk format of rejection-sampling histories: Parquet, one row per event (docs/format.md).

Lists are stored as Arrow lists (flat values + int32 offsets per shard); readers turn them into
flat numpy arrays plus int64 offsets, the layout the weight kernels consume. No padding anywhere.
"""
from __future__ import annotations

import json

import pyarrow as pa

from ..errors import DatasetError, FastRSAError
from ..params import BaseParams
from .layout import json_object

FORMAT_NAME = "fastrsa-rsa-history"
FORMAT_VERSION = 3                      # 3: + flavour records; 2: every final-state particle plus `is_hadron`; 1: hadrons only
READABLE_VERSIONS = (1, 2, 3)
META_KEY = b"fastrsa"

TRIAL_F64 = ("z", "fprel", "mt2")       # per trial, Pythia's order; mt2 < 0 marks a rejected trial
TRIAL_I32 = ("id_old", "id_new")        # flavours of the break (PDG codes)
BREAK_F64 = ("pt2", "pt_mult")          # per string break: dimensionless Gaussian pT2 and its multiplier
HADRON_F64 = ("px", "py", "pz", "e", "m")  # every final-state particle (format 1: final-state hadrons only)
HADRON_I32 = ("pdg",)
HADRON_BOOL = ("is_hadron",)            # format 2: per particle, True for a hadron
FLAVOUR_I32 = ("flav_breaks",)          # format 3: Pythia's 13 flavour-choice counters per event (or none)
SPECIES_I32 = ("species_counts",)       # format 3: identified-hadron counts over the whole event record

SCHEMA = pa.schema(
    [pa.field(n, pa.list_(pa.float64()), nullable=False) for n in TRIAL_F64]
    + [pa.field(n, pa.list_(pa.int32()), nullable=False) for n in TRIAL_I32]
    + [pa.field(n, pa.list_(pa.float64()), nullable=False) for n in BREAK_F64]
    + [pa.field(n, pa.list_(pa.float64()), nullable=False) for n in HADRON_F64]
    + [pa.field(n, pa.list_(pa.int32()), nullable=False) for n in HADRON_I32]
    + [pa.field(n, pa.list_(pa.bool_()), nullable=False) for n in HADRON_BOOL]
    + [pa.field(n, pa.list_(pa.int32()), nullable=False) for n in FLAVOUR_I32 + SPECIES_I32]
    + [pa.field("n_attempts", pa.int32(), nullable=False)]
)
COLUMNS = tuple(SCHEMA.names)
# Columns that share one list length per event (checked on read). The group of the final-state
# particles keeps its format-1 name "hadrons"; `is_hadron` is absent from format-1 datasets.
LIST_GROUPS = {"trials": TRIAL_F64 + TRIAL_I32, "breaks": BREAK_F64,
               "hadrons": HADRON_F64 + HADRON_I32 + HADRON_BOOL, "flavour": FLAVOUR_I32,
               "species": SPECIES_I32}
# Columns that only some readable versions hold: name -> first version that has it.
SINCE_VERSION = {"is_hadron": 2, "flav_breaks": 3, "species_counts": 3}


def columns_of_version(version: int) -> tuple:
    """The columns a dataset of format `version` holds."""
    return tuple(c for c in COLUMNS if SINCE_VERSION.get(c, 1) <= version)


def schema_with_meta(meta: dict) -> pa.Schema:
    return SCHEMA.with_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})


def read_meta(schema: pa.Schema, where: str) -> dict:
    """Metadata dict of a shard's schema, checked for format name, version and columns."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DatasetError(f"{where}: not a fastrsa dataset (no '{META_KEY.decode()}' schema metadata)")
    fix = "the shard's metadata was edited or damaged; delete the shard and rerun the generation command"
    meta = json_object(raw, f"{where}: its fastrsa metadata", fix)
    if meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{where}: format {meta.get('format')!r} is not {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if type(version) is not int:
        raise DatasetError(f"{where}: metadata field 'format_version' = {version!r} must be an integer; {fix}")
    if version > FORMAT_VERSION:
        raise DatasetError(f"{where}: format version {version} is newer than this fastrsa reads "
                           f"({FORMAT_VERSION}); upgrade fastrsa")
    if version not in READABLE_VERSIONS:
        raise DatasetError(f"{where}: format version {version} is not one this fastrsa reads "
                           f"({', '.join(map(str, READABLE_VERSIONS))})")
    _check_fields(meta, where, fix)
    cols = columns_of_version(version)
    missing = [c for c in cols if c not in schema.names]
    if missing:
        raise DatasetError(f"{where}: missing columns {missing}; the dataset is incomplete or not "
                           "made by 'fastrsa generate'")
    for name in cols:
        if not schema.field(name).type.equals(SCHEMA.field(name).type):
            raise DatasetError(f"{where}: column {name!r} has type {schema.field(name).type}, "
                               f"expected {SCHEMA.field(name).type}")
    return meta


_INT = "an integer"
# Metadata fields the code reads: (path, accepted types, what to say). Optional ones may be absent.
_FIELDS = ((("base",), (dict,), "an object of base parameters", True),
           (("setup",), (dict,), "an object", True),
           (("setup", "name"), (str,), "a string", True),
           (("setup", "energy"), (int, float, type(None)), "a number", False),
           (("seed",), (int, type(None)), _INT, False),
           (("shard",), (dict,), "an object", False),
           (("shard", "index"), (int,), _INT, False),
           (("shard", "events"), (int,), _INT, False),
           (("shard", "seed"), (int, type(None)), _INT, False),
           (("pythia_settings",), (list,), "a list of strings", False),
           (("pythia_version",), (str,), "a string", False),
           (("sentinel",), (dict, type(None)), "an object", False))


def _check_fields(meta: dict, where: str, fix: str) -> None:
    """Types of the metadata fields fastrsa reads, and the base point through BaseParams' own checks."""
    for path, types, what, required in _FIELDS:
        node, ok = meta, True
        for k in path:
            if not isinstance(node, dict) or k not in node:
                ok = False
                break
            node = node[k]
        name = ".".join(path)
        if not ok:
            if required:
                raise DatasetError(f"{where}: metadata field '{name}' is missing; {fix}")
            continue
        if isinstance(node, bool) or not isinstance(node, types):
            raise DatasetError(f"{where}: metadata field '{name}' = {node!r} must be {what}; {fix}")
    base = meta["base"]
    bad = [k for k, v in base.items() if k != "use_old_aextra" and (isinstance(v, bool) or
                                                                     not isinstance(v, (int, float)))]
    if bad:
        raise DatasetError(f"{where}: metadata field 'base.{bad[0]}' = {base[bad[0]]!r} must be a number; {fix}")
    try:
        BaseParams.from_dict(base)
    except (FastRSAError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: metadata field 'base': {exc}; {fix}") from None


# ---- Optional column group of the dqcd setup: the shower's partons beside the hadrons (docs/format.md) ----
# Additive: the reader checks only the columns above, so a dqcd dataset opens, reweights and describes like any
# other; these columns are read by `fastrsa.shower.dataset` (ShowerSample) and the joint fit.
PARTON_COMPONENTS = ("px", "py", "pz", "e")
PARTON_F64 = tuple(f"parton_{c}" for c in PARTON_COMPONENTS)     # partons, colour-chain order q, g..., qbar
PARTON_I32 = ("parton_pdg", "parton_generation", "parton_level")
PARTON_EVENT_F64 = ("parton_log_rate",)         # ln P(structure | Lambda) of the Lambda-dependent columns
PARTON_EVENT_I64 = ("parton_topology", "parton_event", "hadronization_seed")


def parton_taylor_names(orders: int) -> list:
    """Taylor columns (list<float64> per parton: d^k p / dLambda^k / k!) of orders 1..orders."""
    return [f"parton_d{k}_{c}" for k in range(1, orders + 1) for c in PARTON_COMPONENTS]


def parton_fields(orders: int, moved: bool = False) -> list:
    """The parton column group: momenta, ids, grove generation and level, Taylor columns d{k}, log-rate
    derivatives dlograte_{k} (k = 1..orders), log rate, topology, event index, hadronization seed; a moved
    sample (`moved`) has no Taylor columns but `parton_log_weight`, ln P(structure | Lambda') / P(.. | Lambda)."""
    f = [pa.field(n, pa.list_(pa.float64()), nullable=False) for n in PARTON_F64 + tuple(parton_taylor_names(orders))]
    f += [pa.field(n, pa.list_(pa.int32()), nullable=False) for n in PARTON_I32]
    f += [pa.field(f"parton_dlograte_{k}", pa.float64(), nullable=False) for k in range(1, orders + 1)]
    f += [pa.field(n, pa.float64(), nullable=False) for n in PARTON_EVENT_F64 + (("parton_log_weight",) if moved else ())]
    f += [pa.field(n, pa.int64(), nullable=False) for n in PARTON_EVENT_I64]
    return f
