"""The `fastrsa` command line. Every failure a user can cause ends in one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .errors import FastRSAError


def _cmd_generate(args) -> int:
    from .generate import generate
    ds = generate(args.out, events=args.events, a=args.a, b=args.b, sigma=args.sigma, z_head=args.zhead,
                  energy=args.energy, seed=args.seed, jobs=args.jobs, setup=args.setup,
                  shard_events=args.shard_events, progress=not args.quiet)
    print(f"{ds.path}: {len(ds)} events in {len(ds.shards)} shards")
    return 0


def info_text(ds) -> str:
    fv = ds.flat(groups=("trials", "hadrons"))
    n = len(fv)
    nt = np.diff(fv.offsets["trials"])
    nh = np.diff(fv.offsets["hadrons"])
    disk = sum(s.stat().st_size for s in ds.shards)
    base, setup = ds.meta["base"], ds.meta["setup"]
    lines = [f"dataset      {ds.path}" + ("" if ds.complete else
                                            f"  (INCOMPLETE: {len(ds.shards)} of {ds.manifest['n_shards']} shards)"),
             f"events       {n}",
             f"trials/event mean {nt.mean():.1f}  max {nt.max()}",
             f"hadrons/event mean {nh.mean():.2f}  max {nh.max()}",
             f"n_attempts>1 {np.mean(fv.n_attempts > 1):.1%} of events (pion string: a redone attempt; "
             "e+e-: also several strings)",
             f"disk         {disk / 1e6:.2f} MB, {disk / max(nt.sum(), 1):.2f} bytes per trial (all columns)",
             f"setup        {setup['name']}: {setup['description']}, E = {setup['energy']} GeV",
             f"pythia       {ds.meta['pythia_version']}, run seed {ds.meta['seed']}",
             "base         " + "  ".join(f"{k}={v}" for k, v in base.items())]
    return "\n".join(lines)


def _cmd_info(args) -> int:
    from .dataset import open_dataset
    print(info_text(open_dataset(args.path)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastrsa", description="Exact, differentiable reweighting of "
                                "Pythia's Lund string fragmentation (RSA).")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate a dataset of rejection-sampling histories with Pythia")
    g.add_argument("out", help="output directory (created; an interrupted run there is resumed)")
    g.add_argument("--events", type=int, default=10000, help="number of events (default 10000)")
    g.add_argument("--a", type=float, default=0.72, help="StringZ:aLund (default 0.72)")
    g.add_argument("--b", type=float, default=0.88, help="StringZ:bLund in GeV^-2 (default 0.88)")
    g.add_argument("--sigma", type=float, default=0.335, help="StringPT:sigma in GeV (default 0.335)")
    g.add_argument("--zhead", type=float, default=10.0, help="VariationFrag:zHead (default 10)")
    g.add_argument("--energy", type=float, default=None,
                   help="string: GeV per quark (default 50); ee: centre-of-mass GeV (default 91.2)")
    g.add_argument("--setup", choices=["string", "ee"], default="string",
                   help="string: u-ubar string to pions (RSA paper); ee: e+e- -> Z -> hadrons")
    g.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    g.add_argument("--jobs", type=int, default=1, help="parallel processes (default 1)")
    g.add_argument("--shard-events", type=int, default=None, help="events per shard (default: automatic)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_generate)

    i = sub.add_parser("info", help="summarize a dataset")
    i.add_argument("path")
    i.set_defaults(func=_cmd_info)

    from . import cli_fit  # the fitting commands live with the fitting code
    cli_fit.add_commands(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FastRSAError as exc:
        print(f"fastrsa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"fastrsa {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
