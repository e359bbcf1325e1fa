"""The classifier command: train a DeepSets score to use as an observable."""
from __future__ import annotations

from pathlib import Path

from .common import add_command, add_quiet


def _cmd_classifier(args) -> int:
    from ..observables.classifier import train_classifier
    clf = train_classifier(args.base, args.target, hidden=args.hidden, epochs=args.epochs, seed=args.seed,
                           progress=not args.quiet)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    print(f"wrote {out}: held-out accuracy {clf.info['valid_accuracy']:.3f}; use it as "
          f"--observables ...,classifier:{out}")
    return 0


def register(sub) -> None:
    c = add_command(sub, "classifier", "train a DeepSets classifier (base vs target) to use as an observable",
                    "fastrsa classifier --base base --target target --out clf.pt && "
                    "fastrsa fit ... --observables multiplicity,classifier:clf.pt",
                    "score = rho(sum over hadrons of phi(pT, eta, phi)); 20% of the events are held out.")
    c.add_argument("--base", required=True, metavar="DATASET", help="base dataset (label 0)")
    c.add_argument("--target", required=True, metavar="PATH", help="target sample (label 1)")
    c.add_argument("--out", required=True, metavar="FILE", help="model file to write (e.g. model.pt)")
    c.add_argument("--epochs", type=int, default=10, help="training epochs")
    c.add_argument("--hidden", type=int, default=64, help="width of the hidden layers of phi and rho")
    c.add_argument("--seed", type=int, default=0, help="seed of initialization, shuffling and the held-out split")
    add_quiet(c)
    c.set_defaults(func=_cmd_classifier)
