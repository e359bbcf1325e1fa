"""What every command shares: the help formatter, value parsing, output directories and JSON."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

from ..errors import ParameterError
from ..store.layout import LEGACY_MANIFEST, MANIFEST
from ..store.writer import atomic_write_bytes


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's true default (taken from the parser, so it cannot drift from the code) and
    keeps the examples' line breaks. Options without a value (required, flags, computed defaults) say
    in their own text what happens when they are left out."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        return text + " (default: %(default)s)"


def add_command(sub, name: str, summary: str, example: str, details: str = "") -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (in `fastrsa --help`), a description and an example."""
    text = summary[0].upper() + summary[1:] + "." + (f"\n\n{details}" if details else "")
    return sub.add_parser(name, help=summary, description=text, epilog=f"example:\n  {example}",
                          formatter_class=HelpFormatter)


def floats(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise ParameterError(f"{what}: {text!r}; give {n} comma-separated numbers")
    return vals


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=float) + "\n").encode())


# What each command writes into --out (glob patterns); older files of these names are its stale results.
OUTPUTS = {
    "fit": ("result.json", "observables.*", "ellipse.*", "data_*.png", "data_*.pdf", "profile_*.png",
            "profile_*.pdf", "validation/"),
    "landscape": ("landscape.json", "landscape.png", "landscape.pdf", "diagnostics.png", "diagnostics.pdf"),
    "bootstrap": ("bootstrap.json", "bootstrap_ellipses.*"),
    "shower-plot": ("event_displays.*",),
}
OUTPUTS["demo"] = OUTPUTS["fit"] + OUTPUTS["landscape"] + ("demo.json", "lep.json")
# (A pattern ending in '/' is a dataset the command generated, e.g. events at the fitted point.)


def out_dir(path, command: str, overwrite: bool = False) -> Path:
    """Check --out for `command` before any work: refuse a file, and refuse a directory that holds this
    command's results of an earlier run unless `overwrite`, which removes them all (stale figures too).
    The directory itself is created by the first file written, so an interrupted command leaves none."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: exists and is not a directory")
    old = []
    if out.is_dir():
        for pat in OUTPUTS[command]:
            if pat.endswith("/"):
                d = out / pat[:-1]
                old += [d] if (d / MANIFEST).exists() or (d / LEGACY_MANIFEST).exists() else []
            else:
                old += [f for f in out.glob(pat) if f.is_file()]
    old = sorted(set(old))
    if old and not overwrite:
        names = ", ".join(f.name for f in old[:3]) + (", ..." if len(old) > 3 else "")
        raise ParameterError(f"--out {out}: holds results of an earlier '{command}' ({names}); pass --overwrite "
                             "to replace them, or choose another directory")
    for f in old:
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    return out


def add_overwrite(p) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace this command's results of an earlier run in --out (they are removed first)")


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress lines")
