"""Reader for YODA text files (Rivet reference data): scatter objects -> `Measurement`.

Read: ``YODA_SCATTER2D`` (``_V2`` and the older unversioned form) and ``YODA_SCATTER1D``. A block is

    BEGIN YODA_SCATTER2D_V2 /REF/<analysis>/<histo>
    Path: /REF/<analysis>/<histo>          # header: "Key: value" (V2) or "Key=value" (old format)
    Title: ~
    Type: Scatter2D
    ---                                     # V2 only: end of the header
    # xval  xerr-  xerr+  yval  yerr-  yerr+  (comment lines start with '#')
    2.0 1.0 1.0 1.0e-05 1.0e-05 1.0e-05     # one point per line
    END YODA_SCATTER2D_V2

The old format may write ``# BEGIN ...`` / ``# END ...``. Other object types (histograms, counters,
YODA2 estimates) and scatters with no points are skipped and listed in `YodaFile.skipped`; asking
for one is a one-line error.
Bins of a Scatter2D are ``[x - xerr-, x + xerr+]``; errors stay as the two one-sided magnitudes given.
A Scatter1D has no x: its points get the bins [i, i+1] (point index) and ``x_label`` "point index".
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .model import Measurement

_BEGIN = re.compile(r"^(?:#\s*)?BEGIN\s+YODA_(\w+?)(?:_V(\d+))?\s+(\S+)\s*$")
_END = re.compile(r"^(?:#\s*)?END\s+YODA_(\w+?)(?:_V(\d+))?\s*$")
EMPTY = "empty scatter"
_COLUMNS = {"SCATTER2D": ("xval", "xerr-", "xerr+", "yval", "yerr-", "yerr+"),
            "SCATTER1D": ("xval", "xerr-", "xerr+")}


def histo_name(path: str) -> str:
    """The name a YODA object path is known by: no ``/REF`` prefix, no leading slash.

    ``/REF/ALEPH_1996_S3486095/d18-x01-y01`` -> ``ALEPH_1996_S3486095/d18-x01-y01``.
    """
    p = path.strip()
    if p.startswith("/REF/"):
        p = p[len("/REF"):]
    return p.lstrip("/")


@dataclass
class YodaFile:
    """The readable objects of one YODA file (by name, see `histo_name`) and the skipped ones."""

    file: str
    measurements: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)   # name -> YODA type, e.g. "HISTO1D_V2", or EMPTY

    def get(self, name: str) -> Measurement:
        key = histo_name(name)
        if key in self.measurements:
            return self.measurements[key]
        if self.skipped.get(key) == EMPTY:
            raise DatasetError(f"{self.file}: histogram {key!r} has no points in the file (an empty "
                               f"placeholder); pick another histogram")
        if key in self.skipped:
            raise DatasetError(f"{self.file}: object {key!r} is a YODA_{self.skipped[key]}, which this reader "
                               f"does not read; convert it to a Scatter2D (e.g. yodacnv) or pick a scatter")
        import difflib
        close = difflib.get_close_matches(key, list(self.measurements), n=4, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else \
            f"the file holds {len(self.measurements)} scatters, e.g. {', '.join(list(self.measurements)[:3])}"
        raise DatasetError(f"{self.file}: histogram {key!r} is not in the file; {hint}")


def read_yoda(file, source: str | None = None) -> dict:
    """Read a YODA text file; returns ``{name: Measurement}`` for its scatters (names as in `histo_name`)."""
    return read_yoda_file(file, source).measurements


def read_yoda_file(file, source: str | None = None) -> YodaFile:
    """Read a YODA text file into a `YodaFile` (scatters by name, plus the skipped object types)."""
    fname = os.fspath(file)
    try:
        text = Path(fname).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"YODA file {fname!r} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise DatasetError(f"YODA file {fname!r} is not UTF-8 text; pass an uncompressed YODA text file "
                           f"(gunzip a .yoda.gz first)") from None
    except OSError as e:
        raise DatasetError(f"YODA file {fname!r} cannot be read ({e.strerror}); check the path and its "
                           f"permissions") from None
    return parse_yoda(text, fname, source=source)


def parse_yoda(text: str, file: str = "<string>", source: str | None = None) -> YodaFile:
    """Parse YODA text (see the module docstring); ``file`` names it in error messages."""
    out = YodaFile(file=file)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        lineno = i + 1
        m = _BEGIN.match(line)
        if m:
            typ, ver, path = m.group(1).upper(), m.group(2), m.group(3)
            i = _read_block(lines, i, typ, ver, path, file, source, out)
            continue
        if _END.match(line):
            raise DatasetError(f"{file}:{lineno}: 'END' without a 'BEGIN'; remove the line or restore the "
                               f"block's BEGIN line")
        if line and not line.startswith("#"):
            raise DatasetError(f"{file}:{lineno}: text outside a BEGIN/END block ({_clip(line)!r}); "
                               f"remove it or comment it out with '#'")
        i += 1
    return out


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _read_block(lines, i, typ, ver, path, file, source, out: YodaFile) -> int:
    """Read the block starting at line index i (the BEGIN line); returns the index after its END."""
    begin_no = i + 1
    name = histo_name(path)
    if not name:
        raise DatasetError(f"{file}:{begin_no}: the BEGIN line has an empty object path; give one like "
                           f"/REF/ANALYSIS/d01-x01-y01")
    if name in out.measurements or name in out.skipped:
        raise DatasetError(f"{file}:{begin_no}: object {name!r} appears twice; keep one copy")
    known = typ in _COLUMNS
    header: dict[str, str] = {}
    rows: list[tuple[int, list[float]]] = []
    in_header = known and ver is not None and int(ver) >= 2   # V2 header runs until '---'
    j = i + 1
    while j < len(lines):
        raw = lines[j]
        line = raw.strip()
        no = j + 1
        e = _END.match(line)
        if e:
            if e.group(1).upper() != typ or e.group(2) != ver:
                raise DatasetError(f"{file}:{no}: 'END YODA_{e.group(1)}{'_V' + e.group(2) if e.group(2) else ''}' "
                                   f"closes a YODA_{typ}{'_V' + ver if ver else ''} block (line {begin_no}); "
                                   f"make the END line match its BEGIN")
            break
        if _BEGIN.match(line):
            raise DatasetError(f"{file}:{no}: 'BEGIN' inside the block of line {begin_no}, which has no END; "
                               f"add 'END YODA_{typ}{'_V' + ver if ver else ''}' before line {no}")
        if not known:       # skipped type: only look for its END
            j += 1
            continue
        if not line:
            j += 1
            continue
        if line == "---":
            in_header = False
            j += 1
            continue
        if line.startswith("#"):
            j += 1
            continue
        if in_header or not _looks_numeric(line):
            if raw[:1] in (" ", "\t") and header:     # continuation of a multi-line header value
                j += 1
                continue
            if in_header and _looks_numeric(line):
                raise DatasetError(f"{file}:{no}: data line before the '---' that ends a YODA_{typ}_V{ver} "
                                   f"header (block of line {begin_no}); add a '---' line after the header")
            kv = re.match(r"^([A-Za-z_][\w\-]*)\s*[:=]\s?(.*)$", line)
            if not kv or rows:
                where = "after the data lines" if rows else "in the header"
                raise DatasetError(f"{file}:{no}: {_clip(line)!r} {where} is neither 'Key: value' nor a data "
                                   f"line of {len(_COLUMNS[typ])} numbers; fix or remove the line")
            header[kv.group(1)] = kv.group(2).strip()
            j += 1
            continue
        rows.append((no, _parse_row(line, typ, file, no)))
        j += 1
    else:
        raise DatasetError(f"{file}:{begin_no}: block {path} has no 'END YODA_{typ}{'_V' + ver if ver else ''}' "
                           f"line (file truncated?); complete the block or remove it")
    if not known:
        out.skipped[name] = typ + (f"_V{ver}" if ver else "")
        return j + 1
    hpath = header.get("Path")
    if hpath is not None and hpath != path:
        raise DatasetError(f"{file}:{begin_no}: header field 'Path' is {hpath!r} but the BEGIN line names "
                           f"{path!r}; make them equal")
    if not rows:        # an empty placeholder (the 2004 ALEPH file has some): listed, not read
        out.skipped[name] = EMPTY
        return j + 1
    a = np.array([r for _, r in rows], dtype=np.float64)
    for col, label in ((1, "xerr-"), (2, "xerr+")) + (((4, "yerr-"), (5, "yerr+")) if typ == "SCATTER2D" else ()):
        bad = np.flatnonzero(a[:, col] < 0)
        if bad.size:
            raise DatasetError(f"{file}:{rows[bad[0]][0]}: field {label!r} is {a[bad[0], col]:g} < 0; YODA "
                               f"errors are magnitudes, write it without the sign")
    title = _null(header.get("Title", ""))
    src = source if source is not None else f"{file}:{path}"
    if typ == "SCATTER2D":
        x, xm, xp, y, ym, yp = a.T
        meas = dict(lo=x - xm, hi=x + xp, x=x, values=y, err_minus=ym, err_plus=yp)
        xl, yl = _null(header.get("XLabel", "")), _null(header.get("YLabel", ""))
    else:
        v, vm, vp = a.T
        idx = np.arange(len(v), dtype=np.float64)
        meas = dict(lo=idx, hi=idx + 1, x=idx + 0.5, values=v, err_minus=vm, err_plus=vp)
        xl, yl = "point index", _null(header.get("XLabel", ""))
    try:
        out.measurements[name] = Measurement(path=name, title=title, x_label=xl, y_label=yl,
                                             source=src, **meas)
    except DatasetError as err:
        raise DatasetError(f"{file}:{begin_no}: {err}") from None
    return j + 1


_NUMERIC_START = re.compile(r"^[+\-]?(\d|\.\d|nan|inf)", re.IGNORECASE)


def _looks_numeric(line: str) -> bool:
    return bool(_NUMERIC_START.match(line))


def _null(s: str) -> str:
    s = s.strip()
    return "" if s in ("~", "null", "Null", "NULL") else s.strip("'\"")


def _parse_row(line: str, typ: str, file: str, no: int) -> list[float]:
    cols = _COLUMNS[typ]
    parts = line.split()
    if len(parts) != len(cols):
        raise DatasetError(f"{file}:{no}: a YODA_{typ} data line has {len(parts)} fields, expected "
                           f"{len(cols)} ({' '.join(cols)}); fix the line")
    vals = []
    for name, s in zip(cols, parts):
        try:
            v = float(s)
        except ValueError:
            raise DatasetError(f"{file}:{no}: field {name!r} is {_clip(s)!r}, not a number; "
                               f"fix the value") from None
        if not np.isfinite(v):
            raise DatasetError(f"{file}:{no}: field {name!r} is {s!r}; give a finite number or drop the point")
        vals.append(v)
    return vals
