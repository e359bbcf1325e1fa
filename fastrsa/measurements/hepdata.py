"""Reader for HEPData-style CSV tables -> `Measurement`, and for covariance/correlation matrix files.

Two table layouts are read (comment lines start with '#'; cells are split with the csv module, so
quoted cells may hold commas):

1. HEPData's CSV export: a header row, then one row per bin::

       #: name: Table 18
       $N_{ch}$,$N_{ch}$ LOW,$N_{ch}$ HIGH,$P(N_{ch})$,stat +,stat -,sys +,sys -
       4,3,5,0.002,0.001,-0.001,0.003,-0.003

   The first column is x, optionally followed by ``<x> LOW`` and ``<x> HIGH`` (the bin edges; without
   them the bin is the point, lo = hi = x). Then a dependent column (the value) and its error columns:
   ``<name> +`` / ``<name> -`` pairs (asymmetric), or a single ``<name>`` column whose name starts with
   stat/sys/syst/err/unc/total (symmetric). A further plain column starts another dependent variable:
   choose one with ``y=``. Signs of the error cells are dropped (HEPData writes the down shift as a
   negative number); a cell ending in ``%`` is relative to the value. The components are kept in
   ``Measurement.components``; ``err_minus``/``err_plus`` are their sum in quadrature. A file with
   several tables (header rows after blank lines) needs ``table=``.

2. The extracts shipped in ``fastrsa/measurements/lep`` (and the same layout written by hand): the
   columns ``x_lo,x_hi,x_center,value,err_minus,err_plus`` (total errors), named either by a header row
   or by a ``# columns: ...`` comment line; ``# source: ...`` sets the source, the first comment line the
   title.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .model import Measurement

_CANON = {"x_lo": "lo", "x_low": "lo", "lo": "lo", "x_hi": "hi", "x_high": "hi", "hi": "hi",
          "x_center": "x", "x_centre": "x", "x": "x", "value": "y", "y": "y",
          "err_minus": "em", "err_plus": "ep"}
_SYM_ERR = re.compile(r"^(stat|sys|syst|err|error|unc|uncertainty|total)\b", re.IGNORECASE)
_SIDED = re.compile(r"^(.*?)\s*([+-])$")
_UNITS = re.compile(r"^(.*?)\s*\[([^\]]*)\]\s*$")


def _read_text(fname: str, what: str) -> str:
    try:
        return Path(fname).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{what} file {fname!r} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{what} file {fname!r} is not UTF-8 text; pass a plain CSV file") from None
    except OSError as e:
        raise DatasetError(f"{what} file {fname!r} cannot be read ({e.strerror}); check the path and its "
                           f"permissions") from None


def _split(line: str) -> list[str]:
    return [c.strip() for c in next(csv.reader(io.StringIO(line)))]


def _is_number(s: str) -> bool:
    try:
        float(s.rstrip("%"))
        return True
    except ValueError:
        return False


def _is_header(cells: list[str]) -> bool:
    """A header row has no numeric cell (a data row with a typo stays a data row and fails to parse)."""
    return not any(_is_number(c) for c in cells if c)


def _units(label: str) -> tuple[str, str]:
    m = _UNITS.match(label)
    return (m.group(1).strip(), m.group(2).strip()) if m else (label.strip(), "")


def read_hepdata_csv(file, *, y=None, table: int | None = None, path: str | None = None,
                     source: str | None = None) -> Measurement:
    """Read one table of a HEPData-style CSV file (see the module docstring) into a `Measurement`.

    ``y``: the dependent column (its header name, or its 0-based position among the dependent columns)
    when the table has several; ``table``: the 0-based table when the file holds several; ``path``: the
    measurement's name (default: the file's stem).
    """
    fname = os.fspath(file)
    text = _read_text(fname, "CSV")
    comments: list[str] = []
    meta: dict[str, str] = {}
    blocks: list[list[tuple[int, list[str]]]] = []
    cur: list[tuple[int, list[str]]] | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            cur = None
            continue
        if line.startswith("#"):
            body = line[2:].strip() if line.startswith("#:") else line.lstrip("#").strip()
            if line.startswith("#:"):
                k, _, v = body.partition(":")
                meta.setdefault(k.strip().lower(), v.strip())
            elif re.match(r"^(columns|source)\s*:", body, re.IGNORECASE):
                k, _, v = body.partition(":")
                meta.setdefault(k.strip().lower(), v.strip())
            elif body:
                comments.append(body)
            continue
        try:
            cells = _split(line)
        except csv.Error as e:
            raise DatasetError(f"{fname}:{no}: the line is not valid CSV ({e}); fix its quoting") from None
        header_row = _is_header(cells)
        if cur is None or (header_row and cur):
            cur = []
            blocks.append(cur)
        cur.append((no, cells))
    if not blocks:
        raise DatasetError(f"CSV file {fname!r} holds no table rows; give a header row and data rows")
    if table is None:
        if len(blocks) > 1:
            raise DatasetError(f"CSV file {fname!r} holds {len(blocks)} tables; pick one with table=0.."
                               f"{len(blocks) - 1}")
        table = 0
    if not 0 <= table < len(blocks):
        raise DatasetError(f"CSV file {fname!r}: field 'table' is {table}, the file has {len(blocks)} "
                           f"table(s); pick 0..{len(blocks) - 1}")
    block = blocks[table]
    first_no, first = block[0]
    if _is_header(first):
        names, rows = first, block[1:]
    elif "columns" in meta:
        names = [c.strip() for c in meta["columns"].split("(")[0].split(",")]
        names = [c.split()[0] if c.split() else c for c in names]
        names, rows = names, block
    else:
        raise DatasetError(f"{fname}:{first_no}: the table has no header row; add one (x,x LOW,x HIGH,y,"
                           f"stat +,stat -) or a '# columns: x_lo,x_hi,x_center,value,err_minus,err_plus' line")
    if not rows:
        raise DatasetError(f"{fname}:{first_no}: the table has a header but no data rows; add its rows")
    ncol = len(names)
    data = []
    for no, cells in rows:
        if len(cells) != ncol:
            raise DatasetError(f"{fname}:{no}: the row has {len(cells)} fields, the header names {ncol}; "
                               f"give one field per column")
        data.append((no, cells))
    stem = path if path is not None else Path(fname).stem
    title = meta.get("name") or meta.get("description") or (comments[0] if comments else "")
    src = source if source is not None else (meta.get("source") or meta.get("table_doi") or fname)
    lower = [n.lower() for n in names]
    if {"value", "err_minus", "err_plus"} <= set(lower) or {"y", "err_minus", "err_plus"} <= set(lower):
        return _canonical(fname, names, data, stem, title, src)
    return _hepdata(fname, names, data, stem, title, src, y, first_no)


def _num(fname: str, no: int, col: str, s: str, rel_to: float | None = None) -> float:
    pct = s.endswith("%")
    try:
        v = float(s[:-1] if pct else s)
    except ValueError:
        raise DatasetError(f"{fname}:{no}: field {col!r} is {s!r}, not a number; fix the value") from None
    if not np.isfinite(v):
        raise DatasetError(f"{fname}:{no}: field {col!r} is {s!r}; give a finite number or drop the row")
    if pct:
        if rel_to is None:
            raise DatasetError(f"{fname}:{no}: field {col!r} is a percentage ({s!r}); only error columns may "
                               f"be relative, give an absolute number")
        v = v / 100.0 * abs(rel_to)
    return v


def _canonical(fname, names, data, stem, title, src) -> Measurement:
    roles: dict[str, int] = {}
    for k, n in enumerate(names):
        r = _CANON.get(n.lower())
        if r is None:
            raise DatasetError(f"{fname}: column {n!r} is not one of x_lo,x_hi,x_center,value,err_minus,"
                               f"err_plus; rename it or use the HEPData header style")
        if r in roles:
            raise DatasetError(f"{fname}: column {n!r} repeats role {r!r}; keep one such column")
        roles[r] = k
    if "x" not in roles and not {"lo", "hi"} <= set(roles):
        raise DatasetError(f"{fname}: the table has neither x_center nor x_lo and x_hi; add the x columns")
    cols: dict[str, list[float]] = {r: [] for r in roles}
    for no, cells in data:
        for r, k in roles.items():
            v = _num(fname, no, names[k], cells[k])
            if r in ("em", "ep"):
                if v < 0:
                    raise DatasetError(f"{fname}:{no}: field {names[k]!r} is {v:g} < 0; give error "
                                       f"magnitudes")
            cols[r].append(v)
    x = cols.get("x")
    lo = cols.get("lo", x)
    hi = cols.get("hi", x)
    return _build(fname, dict(path=stem, lo=lo, hi=hi, x=x, values=cols["y"], err_minus=cols["em"],
                              err_plus=cols["ep"], title=title, source=src))


def _hepdata(fname, names, data, stem, title, src, y, header_no) -> Measurement:
    x_name = names[0]
    k = 1
    has_edges = len(names) >= 3 and names[1] == f"{x_name} LOW" and names[2] == f"{x_name} HIGH"
    if has_edges:
        k = 3
    elif any(n.endswith(" LOW") or n.endswith(" HIGH") for n in names[1:]):
        raise DatasetError(f"{fname}:{header_no}: LOW/HIGH columns must directly follow their x column "
                           f"{x_name!r}; tables with several x variables are not read, export one x only")
    # group the remaining columns: dependent column, then its error columns
    deps: list[tuple[int, list]] = []
    for c in range(k, len(names)):
        n = names[c]
        sided = _SIDED.match(n)
        if sided and deps and sided.group(1):
            deps[-1][1].append((c, sided.group(1).strip(), sided.group(2)))
        elif _SYM_ERR.match(n) and deps:
            deps[-1][1].append((c, n.strip(), "±"))
        else:
            deps.append((c, []))
    if not deps:
        raise DatasetError(f"{fname}:{header_no}: the header has no dependent (y) column after {x_name!r}; "
                           f"add the measured values' column")
    dep_names = [names[c] for c, _ in deps]
    if y is None:
        if len(deps) > 1:
            raise DatasetError(f"{fname}:{header_no}: the table has {len(deps)} dependent columns "
                               f"({', '.join(dep_names)}); pick one with y=<name or 0..{len(deps) - 1}>")
        pick = 0
    elif isinstance(y, int) and not isinstance(y, bool):
        if not 0 <= y < len(deps):
            raise DatasetError(f"{fname}: field 'y' is {y}, the table has {len(deps)} dependent columns; "
                               f"pick 0..{len(deps) - 1}")
        pick = y
    else:
        if y not in dep_names:
            raise DatasetError(f"{fname}: field 'y' is {y!r}, not a dependent column; pick one of "
                               f"{', '.join(dep_names)}")
        pick = dep_names.index(y)
    yc, errs = deps[pick]
    # pair the +/- columns of each error source
    sources: dict[str, dict[str, int]] = {}
    for c, nm, side in errs:
        d = sources.setdefault(nm, {})
        if side in d or (side == "±" and d) or ("±" in d):
            raise DatasetError(f"{fname}:{header_no}: error column {names[c]!r} repeats source {nm!r}; "
                               f"give each source once, as '{nm} +' and '{nm} -' or as '{nm}'")
        d[side] = c
    for nm, d in sources.items():
        if "±" not in d and set(d) != {"+", "-"}:
            missing = "-" if "+" in d else "+"
            raise DatasetError(f"{fname}:{header_no}: error column '{nm} {missing}' is missing (only "
                               f"'{nm} {'+' if missing == '-' else '-'}' given); add it")
    xs, lo, hi, vals = [], [], [], []
    comp = {nm: ([], []) for nm in sources}
    for no, cells in data:
        xv = _num(fname, no, x_name, cells[0])
        xs.append(xv)
        if has_edges:
            lo.append(_num(fname, no, names[1], cells[1]))
            hi.append(_num(fname, no, names[2], cells[2]))
        v = _num(fname, no, names[yc], cells[yc])
        vals.append(v)
        for nm, d in sources.items():
            if "±" in d:
                m = p = abs(_num(fname, no, names[d["±"]], cells[d["±"]], rel_to=v))
            else:
                p = abs(_num(fname, no, names[d["+"]], cells[d["+"]], rel_to=v))
                m = abs(_num(fname, no, names[d["-"]], cells[d["-"]], rel_to=v))
            comp[nm][0].append(m)
            comp[nm][1].append(p)
    comps = {nm: (np.array(m), np.array(p)) for nm, (m, p) in comp.items()}
    n = len(vals)
    em = np.sqrt(sum((m ** 2 for m, _ in comps.values()), np.zeros(n)))
    ep = np.sqrt(sum((p ** 2 for _, p in comps.values()), np.zeros(n)))
    xl, xu = _units(x_name)
    yl, yu = _units(names[yc])
    name = stem if len(deps) == 1 else f"{stem}/{names[yc]}"
    return _build(fname, dict(path=name, lo=lo if has_edges else xs, hi=hi if has_edges else xs, x=xs,
                              values=vals, err_minus=em, err_plus=ep, components=comps, x_label=xl,
                              x_units=xu, y_label=yl, y_units=yu, title=title, source=src))


def _build(fname, kw) -> Measurement:
    try:
        return Measurement(**kw)
    except DatasetError as e:
        raise DatasetError(f"{fname}: {e}") from None


def read_covariance(file, n: int | None = None, layout: str = "auto") -> np.ndarray:
    """Read a covariance (or correlation) matrix from a CSV/whitespace text file; returns an n x n array.

    ``layout="square"``: n rows of n numbers. ``layout="triplets"``: rows ``i,j,value`` (an optional
    header row is skipped); indices are 0-based when any index is 0, else 1-based; a missing (i, j) is
    taken from (j, i), else 0; every diagonal entry must be given. ``"auto"`` (default): square when the
    number of rows equals the number of fields per row, else triplets (so a 2 x 2 upper triangle given
    as 3 triplets needs ``layout="triplets"``). Pass the result to `Measurement.with_covariance` or
    `Measurement.with_correlation`, which check its shape, symmetry and positivity.
    """
    fname = os.fspath(file)
    text = _read_text(fname, "covariance")
    rows: list[tuple[int, list[str]]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = _split(line) if "," in line else line.split()
        if not rows and not all(_is_number(c) for c in cells):
            continue                                  # header row
        rows.append((no, cells))
    if not rows:
        raise DatasetError(f"covariance file {fname!r} holds no numbers; give a square matrix or i,j,value rows")
    width = len(rows[0][1])
    if layout == "auto":
        layout = "square" if width == len(rows) else ("triplets" if width == 3 else "square")
    if layout == "square":
        a = []
        for no, cells in rows:
            if len(cells) != len(rows):
                raise DatasetError(f"{fname}:{no}: a square matrix row has {len(cells)} fields, the file has "
                                   f"{len(rows)} rows; give n rows of n numbers")
            a.append([_num(fname, no, f"column {k}", c) for k, c in enumerate(cells)])
        m = np.array(a)
    elif layout == "triplets":
        trip = []
        for no, cells in rows:
            if len(cells) != 3:
                raise DatasetError(f"{fname}:{no}: a triplet row has {len(cells)} fields; give i,j,value")
            i, j = (_num(fname, no, c, s) for c, s in (("i", cells[0]), ("j", cells[1])))
            if i != int(i) or j != int(j):
                raise DatasetError(f"{fname}:{no}: fields 'i','j' are {cells[0]!r},{cells[1]!r}; give integer "
                                   f"bin indices")
            trip.append((no, int(i), int(j), _num(fname, no, "value", cells[2])))
        base = 0 if any(i == 0 or j == 0 for _, i, j, _ in trip) else 1
        size = max(max(i, j) for _, i, j, _ in trip) + 1 - base
        if n is not None and size > n:
            raise DatasetError(f"{fname}: an index reaches bin {size - 1 + base} ({base}-based), field 'n' is "
                               f"{n}; fix the indices or n")
        size = n if n is not None else size
        m = np.full((size, size), np.nan)
        for no, i, j, v in trip:
            i, j = i - base, j - base
            if i < 0 or j < 0:
                raise DatasetError(f"{fname}:{no}: negative bin index; indices are 0- or 1-based")
            if not np.isnan(m[i, j]) and m[i, j] != v:
                raise DatasetError(f"{fname}:{no}: entry ({i + base},{j + base}) is given twice with "
                                   f"different values; keep one")
            m[i, j] = v
        missing_diag = np.flatnonzero(np.isnan(np.diag(m)))
        if missing_diag.size:
            raise DatasetError(f"{fname}: diagonal entry ({missing_diag[0] + base},{missing_diag[0] + base}) is "
                               f"missing; give every variance")
        m = np.where(np.isnan(m), m.T, m)
        m = np.where(np.isnan(m), 0.0, m)
    else:
        raise DatasetError(f"read_covariance: field 'layout' is {layout!r}; use auto, square or triplets")
    if n is not None and m.shape != (n, n):
        raise DatasetError(f"{fname}: the matrix is {m.shape[0]} x {m.shape[1]}, field 'n' is {n}; "
                           f"give an n x n matrix")
    return m


def write_csv(m: Measurement, file) -> None:
    """Write a measurement in the extract layout that `read_hepdata_csv` reads back (x_lo, x_hi, x_center,
    value, err_minus, err_plus; full float precision), e.g. pseudo-data to fit with `fastrsa fit --data`."""
    x = m.x if m.x is not None else 0.5 * (m.lo + m.hi)
    lines = [f"# {m.title or m.path}", f"# source: {m.source or 'written by fastrsa'}",
             "# columns: x_lo,x_hi,x_center,value,err_minus,err_plus"]
    lines += [",".join(repr(float(v)) for v in row) for row in zip(m.lo, m.hi, x, m.values, m.err_minus, m.err_plus)]
    Path(file).write_text("\n".join(lines) + "\n")
