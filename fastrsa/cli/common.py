"""What every command shares: the help formatter, value parsing, output directories and JSON."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..errors import ParameterError
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
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=float) + "\n").encode())


def out_dir(path) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress lines")
