"""The `fastrsa` command line: one module per command group, each registering its own commands.
Every failure a user can cause ends in one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import sys

from ..errors import FastRSAError
from . import classifier, demo, fitting, generate, reweight, shower

GROUPS = (generate, reweight, shower, fitting, classifier, demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastrsa", description="Exact, differentiable reweighting of "
                                "Pythia's Lund string fragmentation (RSA).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FastRSAError as exc:
        print(f"fastrsa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"fastrsa {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
