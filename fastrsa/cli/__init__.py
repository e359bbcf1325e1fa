"""The `fastrsa` command line: one module per command group, each registering its own commands.
Every failure a user can cause ends in one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import sys

from ..errors import FastRSAError

GROUP_NAMES = ("generate", "shower", "fitting", "classifier", "demo")


def build_parser() -> argparse.ArgumentParser:
    import importlib
    p = argparse.ArgumentParser(prog="fastrsa", description="Exact, differentiable reweighting of "
                                "Pythia's Lund string fragmentation (RSA).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in GROUP_NAMES:
        importlib.import_module(f".{name}", __name__).register(sub)
    return p


def main(argv=None) -> int:
    """The command line. Ctrl-C at any moment, even while the libraries still load, ends in one line and
    exit 130 (this module imports nothing heavy before its handler is in place)."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    command = words[0] if words else ""
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return args.func(args)
    except FastRSAError as exc:
        print(f"fastrsa {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"fastrsa {command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
