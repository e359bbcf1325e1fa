"""Dataset commands: generate and info."""
from __future__ import annotations

import numpy as np

from ..params import PAPER_BASE, SPACE
from ..pythia.setups import DEFAULT_ENERGY, DESCRIPTIONS
from .common import add_command, add_quiet


def _cmd_generate(args) -> int:
    import sys

    from ..generation import generate
    from ..generation.run import cmnd_settings
    from ..pythia.cmnd import main_key_notes
    if args.cmnd is not None or args.set:
        for note in main_key_notes(cmnd_settings(args.cmnd, args.set)):
            print(f"fastrsa generate: note: {note}", file=sys.stderr)
    ds = generate(args.out, events=args.events, a=args.a, b=args.b, sigma=args.sigma, z_head=args.zhead,
                  energy=args.energy, seed=args.seed, jobs=args.jobs, setup=args.setup,
                  shard_events=args.shard_events, progress=not args.quiet, cmnd=args.cmnd,
                  settings=args.set or (), dask=args.dask, lam=args.lam, orders=args.orders)
    if ds is None:          # written to a URL
        print(f"{args.out}: {args.events} events complete")
    else:
        print(f"{ds.path}: {len(ds)} events in {len(ds.shards)} shards")
    return 0


def info_text(ds) -> str:
    fv = ds.flat(groups=("trials", "hadrons"))
    n = len(fv)
    if n == 0:
        return "\n".join([f"dataset      {ds.path}", "events       0 (the dataset holds no events)",
                          f"setup        {ds.meta['setup'].get('name')}", f"format       {ds.format_version}"])
    nt = np.diff(fv.offsets["trials"])
    nh = np.diff(fv.offsets["hadrons"])
    mask = fv.values.get("is_hadron")
    if mask is None:
        nhad = nh
    else:
        csum = np.concatenate([[0], np.cumsum(mask)])
        nhad = csum[fv.offsets["hadrons"][1:]] - csum[fv.offsets["hadrons"][:-1]]
    disk = sum(s.stat().st_size for s in ds.shards)
    base, setup = ds.meta["base"], ds.meta["setup"]
    lines = [f"dataset      {ds.path}" + ("" if ds.complete else
                                            f"  (INCOMPLETE: {len(ds.shards)} of {ds.manifest['n_shards']} shards)"),
             f"events       {n}",
             f"trials/event mean {nt.mean():.1f}  max {nt.max()}",
             f"hadrons/event mean {nhad.mean():.2f}  max {nhad.max()}" + (
                 f"  (all final-state particles: mean {nh.mean():.2f})" if ds.final_state_complete
                 else "  (format 1: only hadrons stored)"),
             f"n_attempts>1 {np.mean(fv.n_attempts > 1):.1%} of events (pion string: a redone attempt; "
             "e+e-: also several strings)",
             f"disk         {disk / 1e6:.2f} MB, {disk / max(nt.sum(), 1):.2f} bytes per trial (all columns)",
             f"setup        {setup['name']}: {setup.get('description', '')}, E = {setup.get('energy')} GeV",
             f"pythia       {ds.meta['pythia_version']}, run seed {ds.meta['seed']}, format "
             f"{ds.format_version}",
             "base         " + "  ".join(f"{k}={v}" for k, v in base.items())]
    if setup["name"] == "dqcd":
        sh = setup["shower"]
        lines.append(f"shower       Lambda = {sh['lambda']} GeV, Taylor orders 1..{sh['orders']}, {sh['shower_version']}"
                     + (f"; MOVED by {sh['moved']['delta']:+g} GeV at order {sh['moved']['order']}" if "moved" in sh
                        else ""))
    return "\n".join(lines)


def shower_info_text(path) -> str:
    from ..shower.dataset import open_shower
    s = open_shower(path)
    mult = (s.offsets[1:] - s.offsets[:-1]).double()
    return "\n".join([f"dataset      {path}  (parton showers, fastrsa shower {s.version})",
                      f"events       {s.n_events}",
                      f"partons/event mean {float(mult.mean()):.2f}  max {int(mult.max())}",
                      f"Lambda       {s.lam} GeV, sqrt(s) = {s.ecm} GeV, rapidity step dy = {s.dy:.4f}",
                      f"derivatives  Taylor orders 1..{s.orders} of every momentum; log-rate derivatives",
                      f"seed         {s.seed} (event i's random numbers derive from the seed and i)"])


def _cmd_info(args) -> int:
    from ..shower.dataset import is_shower_dataset
    from ..store.dataset import open_dataset
    from ..store.integrity import verify
    if args.verify:
        n = verify(args.path)       # before the summary: a damaged shard is named, not decoded half-way
    print(shower_info_text(args.path) if is_shower_dataset(args.path) else info_text(open_dataset(args.path)))
    if args.verify:
        print(f"verified     {n} shards: checksums, identities and every page intact")
    return 0


def register(sub) -> None:
    setups = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    g = add_command(sub, "generate", "generate a dataset of rejection-sampling histories with Pythia",
                    "fastrsa generate base --events 20000 --a 0.72 --b 0.88 --jobs 2\n"
                    "  fastrsa generate lep40 --cmnd ee.cmnd --set 'Beams:eCM = 40' --events 20000",
                    f"Setups: {setups}. An interrupted run resumes when the same command is repeated.")
    g.add_argument("out", help="output directory (created; an interrupted run there is resumed)")
    g.add_argument("--events", type=int, default=10000, help="number of events")
    for name in ("a", "b", "sigma"):
        p = SPACE[name]
        g.add_argument(f"--{name}", type=float, default=None,
                       help=f"{p.setting}{' [' + p.unit + ']' if p.unit else ''} of the base point ({p.domain()}); "
                            f"default {PAPER_BASE[name]} (the RSA paper's point); refused with --cmnd "
                            f"(use --set '{p.setting} = ...')")
    g.add_argument("--zhead", type=float, default=10.0,
                   help="VariationFrag:zHead, the proposal's oversampling (1-100); larger reaches farther points")
    g.add_argument("--energy", type=float, default=None,
                   help=f"[GeV] string: energy per quark; ee: centre-of-mass energy "
                        f"(default: {DEFAULT_ENERGY['string']} for string, {DEFAULT_ENERGY['ee']} for ee; "
                        "refused with --cmnd: use --set 'Beams:eCM = ...')")
    g.add_argument("--setup", choices=sorted(DEFAULT_ENERGY), default=None,
                   help="string (default): u-ubar string to pions (RSA paper); ee: e+e- -> Z -> hadrons; dqcd: "
                        "fastrsa.shower parton showers hadronized by Pythia (docs/shower.md)")
    g.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="dqcd only: the shower's QCD scale Lambda [GeV] (default 0.4)")
    g.add_argument("--orders", type=int, default=None,
                   help="dqcd only: Taylor orders in Lambda stored with the partons (0-6, default 3)")
    g.add_argument("--cmnd", metavar="FILE", default=None,
                   help="your own Pythia configuration (Pythia's .cmnd format, any process): every line is "
                        "applied with readString in order, then --set, then fastrsa's record switches and "
                        "per-shard seed; the base point is read back from Pythia (docs/your-pythia.md)")
    g.add_argument("--set", action="append", metavar="'KEY = VALUE'", default=None,
                   help="a Pythia setting applied after --cmnd (repeatable, in order); alone it is the "
                        "whole configuration")
    g.add_argument("--seed", type=int, default=1, help="run seed (each shard's seed derives from it)")
    g.add_argument("--jobs", type=int, default=1, help="parallel worker processes (at most one per core is started)")
    g.add_argument("--dask", default=None, metavar="local[:N]|tcp://HOST:PORT",
                   help="make the shards as tasks of a Dask cluster instead of --jobs processes: local (one "
                        "worker per core), local:N, or a running scheduler's address; OUT must be a path every "
                        "worker reaches, or an fsspec URL (s3://...) they are configured for. Needs pip install "
                        "'fastrsa[dask]'; shards are byte-identical to a local run's (docs/distributed.md)")
    g.add_argument("--shard-events", type=int, default=None,
                   help="events per shard (default: events / 8, at most 10000; never dependent on --jobs)")
    add_quiet(g)
    g.set_defaults(func=_cmd_generate)

    i = add_command(sub, "info", "summarize a dataset (events, trials, size, setup, base point)",
                    "fastrsa info base\n  fastrsa info base --verify")
    i.add_argument("path", help="dataset directory (or one of its Parquet shards)")
    i.add_argument("--verify", action="store_true",
                   help="also read every shard in full: its checksum against the manifest, its identity "
                        "and every Parquet page (exit 2 naming the first bad shard)")
    i.set_defaults(func=_cmd_info)
