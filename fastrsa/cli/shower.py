"""Shower commands: `fastrsa shower` (a moved-shower dataset) and `fastrsa shower-plot` (event displays of
base, moved and control partons, as in Fig. 2 of the EventMover paper)."""
from __future__ import annotations

from .common import add_command, add_overwrite, add_quiet, out_dir


def _cmd_shower(args) -> int:
    from ..shower.dataset import generate_shower, open_shower
    out = generate_shower(args.out, events=args.events, lam=args.lam, ecm=args.ecm, orders=args.orders,
                          seed=args.seed, jobs=args.jobs, shard_events=args.shard_events, progress=not args.quiet)
    s = open_shower(out)
    print(f"{out}: {s.n_events} showers at Lambda = {s.lam} GeV, sqrt(s) = {s.ecm} GeV, "
          f"{s.p.shape[0] / max(s.n_events, 1):.2f} partons per event, Taylor orders 1..{s.orders}")
    return 0


def _cmd_shower_plot(args) -> int:
    from ..plots import plot_event_displays
    from ..shower.dataset import open_shower
    out = out_dir(args.out, "shower-plot", args.overwrite)
    s = open_shower(args.base)
    files = plot_event_displays(s, args.delta, args.events, out / "event_displays")
    print(f"wrote {len(files)} figures to {out}/")
    return 0


def _cmd_move(args) -> int:
    import sys

    from ..generation.dqcd import hadronize_moved
    rep = hadronize_moved(args.base, args.out, args.delta, args.order, progress=not args.quiet,
                          **({} if args.m2_tolerance is None else {"m2_tolerance": args.m2_tolerance}))
    print(f"{args.out}: {rep['hadronized']} of {rep['events']} events moved to Lambda = {rep['lambda']:g} GeV "
          f"(order {rep['order']}) and hadronized with their own seeds"
          + (f" ({rep['failed_hadronizations']} failed hadronizations retried with the next seed)"
             if rep["failed_hadronizations"] else ""))
    if rep["unphysical"]:
        print(f"fastrsa move: {rep['unphysical']} events not hadronized: an unphysical moved parton "
              f"({rep['negative_energy']} with E <= 0, {rep['off_shell']} with |m^2| > {rep['m2_tolerance']} GeV^2); "
              "their indices are in each shard's metadata (unphysical.events)", file=sys.stderr)
    return 0


def register(sub) -> None:
    s = add_command(sub, "shower", "generate a dataset of Discrete-QCD parton showers with their Lambda derivatives",
                    "fastrsa shower showers --events 20000 --lambda 0.4 --orders 3",
                    "e+e- -> q qbar + dipole cascade (EventMover, docs/shower.md). Each event keeps its partons and "
                    "the Taylor\ncoefficients d^k p / dLambda^k / k! and log-rate derivatives, so it moves with "
                    "Lambda. Interrupted runs resume.")
    s.add_argument("out", help="output directory (created; an interrupted run there is resumed)")
    s.add_argument("--events", type=int, default=10000, help="number of events")
    s.add_argument("--lambda", dest="lam", type=float, default=0.4,
                   help="Lambda [GeV]: the QCD scale of the running coupling and the shower's cut-off")
    s.add_argument("--ecm", type=float, default=91.2, help="centre-of-mass energy [GeV]")
    s.add_argument("--orders", type=int, default=3, help="Taylor orders of the derivatives in Lambda (0-6)")
    s.add_argument("--seed", type=int, default=0, help="run seed (event i's random numbers derive from it and i)")
    s.add_argument("--jobs", type=int, default=1, help="torch threads (the shower is batched over events)")
    s.add_argument("--shard-events", type=int, default=None,
                   help="events per shard (default: 5000, never dependent on --jobs)")
    add_quiet(s)
    s.set_defaults(func=_cmd_shower)

    m = add_command(sub, "move", "hadronize a dqcd dataset's showers moved in Lambda (same hadronization seeds)",
                    "fastrsa move base moved --delta 0.05 --order 3",
                    "The parton events of BASE (fastrsa generate --setup dqcd) are moved to Lambda + delta at Taylor "
                    "ORDER and\nhadronized by Pythia, each with its base event's seed. Events with an unphysical moved "
                    "parton are\ncounted and reported, not hadronized (docs/shower.md).")
    m.add_argument("base", help="a dqcd dataset (fastrsa generate OUT --setup dqcd)")
    m.add_argument("out", help="output directory (created; an interrupted run there is resumed)")
    m.add_argument("--delta", type=float, required=True, help="shift of Lambda [GeV]")
    m.add_argument("--order", type=int, default=3, help="Taylor order of the move (at most the base's orders)")
    m.add_argument("--m2-tolerance", type=float, default=None,
                   help="a moved parton with |E^2 - p^2| above this [GeV^2] is unphysical (default 0.1)")
    add_quiet(m)
    m.set_defaults(func=_cmd_move)

    p = add_command(sub, "shower-plot", "event displays of base, moved (orders 1-3) and control partons",
                    "fastrsa shower-plot --base showers --delta 0.1 --out displays")
    p.add_argument("--base", required=True, metavar="DATASET", help="a dataset from 'fastrsa shower'")
    p.add_argument("--delta", type=float, default=0.1, help="shift of Lambda [GeV] to move the events by")
    p.add_argument("--events", type=int, default=4, help="how many events to show")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the figures")
    add_overwrite(p)
    p.set_defaults(func=_cmd_shower_plot)
