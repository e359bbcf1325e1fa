"""`fastrsa reweight`: per-event log-weights of a dataset at given points of (a, b, sigma, rho, xi, x, y)."""
from __future__ import annotations

import io
import json
from pathlib import Path

from ..errors import ParameterError
from ..params import WEIGHT_SPACE
from .common import add_command

META_KEY = b"fastrsa_reweight"


def parse_point(text: str) -> dict:
    """'a=0.70,b=0.90,rho=0.26' -> {'a': 0.7, 'b': 0.9, 'rho': 0.26} (names of WEIGHT_SPACE, each once)."""
    out = {}
    for item in (s.strip() for s in text.split(",")):
        name, eq, val = item.partition("=")
        name = name.strip()
        try:
            x = float(val) if eq else None
        except ValueError:
            x = None
        if name not in WEIGHT_SPACE.names or x is None:
            raise ParameterError(f"--point {text!r}: {item!r} is not NAME=VALUE with NAME one of "
                                 f"{', '.join(WEIGHT_SPACE.names)} (e.g. --point 'a=0.70,b=0.90,rho=0.26')")
        if name in out:
            raise ParameterError(f"--point {text!r}: {name} is given twice")
        out[name] = x
    WEIGHT_SPACE.check(list(out.values()), where=f"--point {text!r}", names=list(out))
    return out


def reweight(dataset, points: list, out, device: str = "cpu", backend: str = "auto", overwrite: bool = False):
    """Write `out` (Parquet): one row per event of `dataset` in dataset order, a float64 column `logw_<k>`
    per point k (log-weight relative to the dataset's base), and the points, each completed with the base
    values of the parameters it leaves out, in the schema metadata (key 'fastrsa_reweight'). Returns the
    [K, N] log-weights as numpy."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from ..hadronization.dispatch import resolve_device
    from ..hadronization.weights import lund_log_weights
    from ..store.dataset import open_dataset
    from ..store.writer import atomic_write_bytes

    out = Path(out)
    if out.suffix != ".parquet":
        raise ParameterError(f"--out {out}: give a file name ending in .parquet")
    if out.exists() and (out.is_dir() or not overwrite):
        raise ParameterError(f"--out {out}: exists; pass --overwrite to replace it, or choose another name")
    if not points:
        raise ParameterError("--point: give at least one point, e.g. --point 'a=0.70,b=0.90,rho=0.26'")
    ds = open_dataset(dataset)
    batch = ds.to_torch(resolve_device(device))
    names = [n for n in WEIGHT_SPACE.names if any(n in p for p in points)]
    base = {"a": ds.base.a, "b": ds.base.b, "sigma": ds.base.sigma}
    if batch.flavour is not None:
        base.update(zip(("rho", "xi", "x", "y"), batch.flavour.theta))
    missing = [n for n in names if n not in base]
    if missing:     # a flavour parameter of a dataset without flavour records: the batch says why
        from ..errors import DatasetError
        raise DatasetError(batch.flavour_missing)
    full = [{n: float(p.get(n, base[n])) for n in names} for p in points]
    theta = torch.tensor([[q[n] for n in names] for q in full], dtype=torch.float64, device=batch.device)
    lw = lund_log_weights(batch, theta, names=names, backend=backend).cpu().numpy()
    meta = {"dataset": str(ds.path), "events": len(ds), "names": names, "points": full,
            "base": base, "columns": [f"logw_{k}" for k in range(len(full))]}
    table = pa.table({f"logw_{k}": lw[k] for k in range(len(full))})
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    return lw


def _cmd_reweight(args) -> int:
    points = [parse_point(p) for p in (args.point or [])]
    lw = reweight(args.dataset, points, args.out, args.device, overwrite=args.overwrite)
    if not args.quiet:
        import numpy as np
        for k, p in enumerate(points):
            w = np.exp(lw[k] - lw[k].max())
            neff = w.sum() ** 2 / (w ** 2).sum() / len(w)
            print(f"logw_{k}: {', '.join(f'{n}={v:g}' for n, v in p.items())}: N_eff/N = {neff:.3f}")
        print(f"wrote {args.out} ({lw.shape[1]} events x {lw.shape[0]} points)")
    return 0


def register(sub) -> None:
    names = ", ".join(f"{p.name} ({p.setting})" for p in WEIGHT_SPACE)
    r = add_command(sub, "reweight", "write per-event log-weights of a dataset at parameter points",
                    "fastrsa reweight base --point 'a=0.70,b=0.90,rho=0.26' --point 'xi=0.1' --out w.parquet",
                    f"Parameters: {names}. Those a point leaves out stay at the dataset's base. Flavour "
                    "parameters need a dataset with flavour records (format 3, setups ee and cmnd).")
    r.add_argument("dataset", help="dataset directory (or one of its Parquet shards)")
    r.add_argument("--point", action="append", metavar="'NAME=VALUE,...'", required=True,
                   help="a parameter point (repeatable); one column logw_<k> per point, in order")
    r.add_argument("--out", required=True, help="output Parquet file: one row per event, in dataset order")
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    r.add_argument("--quiet", action="store_true", help="no summary lines")
    r.set_defaults(func=_cmd_reweight)
